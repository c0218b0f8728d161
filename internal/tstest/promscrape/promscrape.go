// Package promscrape scrapes a Prometheus /metrics endpoint over real HTTP
// in tests and parses it with the Prometheus text parser (expfmt), so a
// test checks what Prometheus itself would read. It is for tests only and
// must never be imported by a non-test package.
package promscrape

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is one scrape: the metric families by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url and parses the text exposition it returns.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	f, err := Fetch(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return f
}

// Fetch GETs url and parses the text exposition it returns.
func Fetch(url string) (Families, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return Families(mf), nil
}

// Has reports whether the scrape holds a family called name.
func (f Families) Has(name string) bool { return f[name] != nil }

// Value returns the value of the series name{labels} (labels as name,
// value pairs; a series matches when it has at least these labels):
// counters and gauges their value, histograms their sample count, summed
// over every matching series. ok is false when no series matches.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	mf := f[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if !matches(m, labels) {
			continue
		}
		ok = true
		switch {
		case m.GetCounter() != nil:
			v += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			v += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.GetUntyped() != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

// Names returns the family names, sorted (for error messages).
func (f Families) Names() string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
