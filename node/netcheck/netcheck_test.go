package netcheck

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestUDPMappedEndpoint(t *testing.T) {
	s := newResponder(t, responderOpts{})
	cfg := fastConfig(nil)
	cfg.Retries = []time.Duration{time.Minute} // never retransmit here, even on a slow machine
	c, self := checker(t, cfg)
	rep := mustRun(t, c, &wire.DERPMap{Regions: []wire.DERPRegion{region(1, "lo", "", s)}})

	if !rep.UDP {
		t.Error("UDP = false, want true")
	}
	if rep.PublicEndpoint != self {
		t.Errorf("PublicEndpoint = %v, want the socket address %v", rep.PublicEndpoint, self)
	}
	if rep.MappingVariesByDest != MappingUnknown {
		t.Errorf("mapping = %q with one server, want unknown", rep.MappingVariesByDest)
	}
	if rep.PreferredRegion != 1 || rep.RegionLatency[1] <= 0 || rep.Regions[0].Method != MethodSTUN {
		t.Errorf("preferred %d, latency %v, method %q; want region 1 measured by STUN",
			rep.PreferredRegion, rep.RegionLatency, rep.Regions[0].Method)
	}
	if got := rep.Servers[0]; got.Addr != s.addr || got.Mapped != self || got.Sends != 1 || got.Error != "" {
		t.Errorf("server result = %+v", got)
	}
	if n := s.requests.Load(); n != 1 {
		t.Errorf("responder saw %d requests, want 1 (no retransmit after an answer)", n)
	}
}

func TestMapping(t *testing.T) {
	tests := []struct {
		name   string
		deltas []int // one responder per entry, lying by this port delta
		want   Mapping
		nEPs   int
	}{
		{"independent", []int{0, 0}, MappingEndpointIndependent, 1},
		{"independent, same lie", []int{7, 7}, MappingEndpointIndependent, 1},
		{"dependent (symmetric NAT)", []int{1, 2}, MappingEndpointDependent, 2},
		{"dependent among three", []int{0, 0, 3}, MappingEndpointDependent, 2},
		{"one server", []int{0}, MappingUnknown, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &wire.DERPMap{}
			for i, d := range tt.deltas {
				// Each server in its own region, as on a real map.
				m.Regions = append(m.Regions, region(i+1, "r", "", newResponder(t, responderOpts{portDelta: d})))
			}
			c, _ := checker(t, fastConfig(nil))
			rep := mustRun(t, c, m)
			if rep.MappingVariesByDest != tt.want {
				t.Errorf("mapping = %q, want %q", rep.MappingVariesByDest, tt.want)
			}
			if len(rep.MappedEndpoints) != tt.nEPs {
				t.Errorf("mapped endpoints = %v, want %d distinct", rep.MappedEndpoints, tt.nEPs)
			}
			if !rep.UDP || !rep.PublicEndpoint.IsValid() {
				t.Errorf("UDP %v, endpoint %v; want an answer", rep.UDP, rep.PublicEndpoint)
			}
		})
	}
}

func TestUDPBlockedFallsBackToHTTP(t *testing.T) {
	hole := newResponder(t, responderOpts{silent: true})
	relay := newProbeServer(t, http.StatusOK)
	c, _ := checker(t, fastConfig(relay.Client()))
	rep := mustRun(t, c, &wire.DERPMap{Regions: []wire.DERPRegion{region(5, "hole", relay.URL+"/derp", hole)}})

	if rep.UDP || rep.PublicEndpoint.IsValid() {
		t.Errorf("UDP %v endpoint %v; want no UDP", rep.UDP, rep.PublicEndpoint)
	}
	if rep.MappingVariesByDest != MappingUnknown {
		t.Errorf("mapping = %q, want unknown", rep.MappingVariesByDest)
	}
	if rep.PreferredRegion != 5 || rep.RegionLatency[5] <= 0 || rep.Regions[0].Method != MethodHTTP {
		t.Errorf("preferred %d latency %v method %q; want region 5 by HTTP",
			rep.PreferredRegion, rep.RegionLatency, rep.Regions[0].Method)
	}
	if got := rep.Servers[0]; got.Sends != 3 || got.Error == "" {
		t.Errorf("server result = %+v; want 3 sends and an error", got)
	}
	if n := hole.requests.Load(); n != 3 {
		t.Errorf("silent server saw %d requests, want 3 (two retransmits)", n)
	}
}

func TestPreferredRegionIsFastest(t *testing.T) {
	slow := newResponder(t, responderOpts{delay: 80 * time.Millisecond})
	fast := newResponder(t, responderOpts{})
	hole := newResponder(t, responderOpts{silent: true})
	broken := newProbeServer(t, http.StatusServiceUnavailable)
	c, _ := checker(t, fastConfig(broken.Client()))
	m := &wire.DERPMap{Regions: []wire.DERPRegion{
		region(1, "slow", "", slow),
		region(2, "fast", "", fast),
		region(3, "down", broken.URL+"/derp", hole),
	}}
	rep := mustRun(t, c, m)

	if rep.PreferredRegion != 2 {
		t.Errorf("preferred = %d, want 2 (latencies %v)", rep.PreferredRegion, rep.RegionLatency)
	}
	if rep.RegionLatency[1] < 80*time.Millisecond {
		t.Errorf("slow region latency %v, want >= 80ms", rep.RegionLatency[1])
	}
	if _, ok := rep.RegionLatency[3]; ok {
		t.Errorf("unreachable region 3 has a latency: %v", rep.RegionLatency)
	}
	if r3 := rep.Regions[2]; r3.Latency != 0 || !strings.Contains(r3.Error, "503") {
		t.Errorf("region 3 result = %+v, want no latency and the HTTP error", r3)
	}
	if !rep.UDP {
		t.Error("UDP = false though two servers answered")
	}
}

// TestRegionWithoutSTUNUsesHTTP: a region without STUN servers is probed
// over HTTP at once. The STUN phase here would last a minute, so only a
// Run that waits it out fails the bound; a busy machine does not.
func TestRegionWithoutSTUNUsesHTTP(t *testing.T) {
	relay := newProbeServer(t, http.StatusOK)
	cfg := fastConfig(relay.Client())
	cfg.Timeout = 2 * time.Minute
	c, _ := checker(t, cfg)
	rep := mustRun(t, c, &wire.DERPMap{Regions: []wire.DERPRegion{{ID: 9, Code: "web", URL: relay.URL + "/derp/"}}})
	if rep.PreferredRegion != 9 || rep.Regions[0].Method != MethodHTTP || rep.UDP {
		t.Errorf("report = %+v; want region 9 by HTTP, no UDP", rep)
	}
	if rep.Duration >= c.cfg.Timeout/2 {
		t.Errorf("took %v; a map without STUN servers should not wait for the STUN phase", rep.Duration)
	}
}

func TestResolve(t *testing.T) {
	s := newResponder(t, responderOpts{})
	var mu sync.Mutex
	var asked []string
	cfg := fastConfig(nil)
	cfg.Resolver = func(_ context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		asked = append(asked, host)
		mu.Unlock()
		switch host {
		case "stun.test":
			// IPv4 preferred over IPv6 (the socket is IPv4 here).
			return []netip.Addr{netip.MustParseAddr("::1"), s.addr.Addr()}, nil
		case "empty.test":
			return nil, nil
		}
		return nil, errors.New("no such host")
	}
	c, _ := checker(t, cfg)
	port := s.addr.Port()
	m := &wire.DERPMap{Regions: []wire.DERPRegion{{ID: 1, STUN: []string{
		"stun.test:" + strconv.Itoa(int(port)), "missing.test:3478", "empty.test:1", "bad:port:x", "127.0.0.1:0",
	}}}}
	rep := mustRun(t, c, m)
	if got := rep.Servers[0]; got.Addr != s.addr || got.Mapped == (netip.AddrPort{}) {
		t.Errorf("resolved server = %+v, want %v answered", got, s.addr)
	}
	for i, want := range []string{"", "no such host", "no addresses", "bad", "bad port"} {
		if got := rep.Servers[i].Error; want != "" && !strings.Contains(got, want) {
			t.Errorf("server %d error %q, want %q", i, got, want)
		}
	}
	if !rep.UDP || rep.PreferredRegion != 1 {
		t.Errorf("report %+v", rep)
	}
}

func TestResolveForms(t *testing.T) {
	r := &run{c: NewChecker(Config{})}
	tests := []struct {
		in   string
		want string
	}{
		{"192.0.2.1:3478", "192.0.2.1:3478"},
		{"192.0.2.1", "192.0.2.1:3478"},
		{"[2001:db8::1]:9", "[2001:db8::1]:9"},
		{"2001:db8::1", "[2001:db8::1]:3478"},
		{"[::ffff:192.0.2.1]:5", "192.0.2.1:5"},
	}
	for _, tt := range tests {
		got, err := r.resolve(context.Background(), tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("resolve(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{":3478", "1.2.3.4:70000", "1.2.3.4:0", ""} {
		if got, err := r.resolve(context.Background(), bad); err == nil {
			t.Errorf("resolve(%q) = %v, want an error", bad, got)
		}
	}
}

// TestSendFailures: a probe whose sends all failed ends the STUN phase at
// once. The phase here would last a minute, so only a Run that waits it
// out fails the bound; a busy machine does not.
func TestSendFailures(t *testing.T) {
	cfg := fastConfig(nil)
	cfg.Timeout = 2 * time.Minute
	cfg.Conn = failConn{}
	c := NewChecker(cfg)
	start := time.Now()
	rep, err := c.Run(context.Background(), &wire.DERPMap{Regions: []wire.DERPRegion{{ID: 1, STUN: []string{"192.0.2.1:3478"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.UDP || rep.Servers[0].Sends != 0 || !strings.Contains(rep.Servers[0].Error, "unreachable") {
		t.Errorf("report = %+v", rep.Servers)
	}
	if d := time.Since(start); d >= cfg.Timeout/2 {
		t.Errorf("took %v; a probe whose sends all failed should not wait out the STUN phase", d)
	}
}

func TestRunErrors(t *testing.T) {
	m := &wire.DERPMap{Regions: []wire.DERPRegion{{ID: 1, STUN: []string{"192.0.2.1:3478"}}}}
	if _, err := NewChecker(Config{}).Run(context.Background(), m); err == nil {
		t.Error("Run without Conn succeeded")
	}
	c := NewChecker(Config{Conn: &nopConn{}})
	for _, bad := range []*wire.DERPMap{nil, {}} {
		if _, err := c.Run(context.Background(), bad); err == nil {
			t.Errorf("Run(%v) succeeded", bad)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Run(ctx, m); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with canceled ctx err = %v, want context.Canceled", err)
	}
	if n := c.inFlight(); n != 0 {
		t.Errorf("%d transactions pending", n)
	}
}

func TestHandleSTUNIgnoresOthers(t *testing.T) {
	c := NewChecker(Config{Conn: &nopConn{}})
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	resp := stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: []byte{192, 0, 2, 1}, Port: 1})
	from := netip.MustParseAddrPort("192.0.2.9:3478")
	for name, pkt := range map[string][]byte{
		"nil": nil, "short": {0, 1, 0, 0}, "wireguard": {4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		"stranger request": req.Raw, "stranger response": resp.Raw,
	} {
		if c.HandleSTUN(pkt, from) {
			t.Errorf("%s: consumed", name)
		}
	}
}

// TestConcurrentHandleSTUN hammers HandleSTUN with junk while Run runs
// (the race detector checks the locking).
func TestConcurrentHandleSTUN(t *testing.T) {
	s := newResponder(t, responderOpts{})
	c, _ := checker(t, fastConfig(nil))
	junk := stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			c.HandleSTUN(junk, s.addr)
		}
	})
	m := &wire.DERPMap{Regions: []wire.DERPRegion{region(1, "a", "", s), region(2, "b", "", s)}}
	var runs sync.WaitGroup
	for range 4 {
		runs.Go(func() {
			if rep, err := c.Run(context.Background(), m); err != nil || !rep.UDP {
				t.Errorf("Run = %v, %v", rep, err)
			}
		})
	}
	runs.Wait()
	cancel()
	wg.Wait()
}

func TestReportFormats(t *testing.T) {
	rep := &Report{
		UDP:                 true,
		PublicEndpoint:      netip.MustParseAddrPort("203.0.113.5:41641"),
		MappedEndpoints:     []netip.AddrPort{netip.MustParseAddrPort("203.0.113.5:41641"), netip.MustParseAddrPort("203.0.113.5:5000")},
		MappingVariesByDest: MappingEndpointDependent,
		RegionLatency:       map[int]time.Duration{1: 30 * time.Millisecond, 2: 12 * time.Millisecond},
		PreferredRegion:     2,
		Regions: []RegionResult{
			{ID: 1, Code: "fra", Latency: 30 * time.Millisecond, Method: MethodHTTP},
			{ID: 2, Code: "ams", Latency: 12 * time.Millisecond, Method: MethodSTUN},
			{ID: 3, Code: "sin", Error: "GET x: 503"},
		},
	}
	s := rep.String()
	for _, want := range []string{"UDP: yes", "203.0.113.5:41641", "endpoint-dependent", "symmetric", "Preferred region: 2/ams", "12.0ms  (stun)", "30.0ms  (http)", "3/sin", "503"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	if strings.Index(s, "2/ams") > strings.Index(s, "1/fra") || strings.Index(s, "1/fra") > strings.Index(s, "3/sin") {
		t.Errorf("regions not ordered fastest first, unreachable last:\n%s", s)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"udp":true`, `"publicEndpoint":"203.0.113.5:41641"`, `"mapping":"endpoint-dependent"`, `"preferredRegion":2`, `"method":"stun"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.PublicEndpoint != rep.PublicEndpoint || back.RegionLatency[2] != rep.RegionLatency[2] {
		t.Errorf("JSON round trip = %+v, %v", back, err)
	}
	empty, _ := json.Marshal(&Report{MappingVariesByDest: MappingUnknown})
	if strings.Contains(string(empty), "publicEndpoint") {
		t.Errorf("zero endpoint not omitted: %s", empty)
	}
	if s := (&Report{MappingVariesByDest: MappingUnknown}).String(); !strings.Contains(s, "UDP: no") || !strings.Contains(s, "none reachable") {
		t.Errorf("empty report String:\n%s", s)
	}
}
