package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// Cache lifetimes of the coordinator's answers.
const (
	admitPositiveTTL = 30 * time.Second
	admitNegativeTTL = 5 * time.Second
	// admitStaleTTL is how long a positive answer still counts when the
	// coordinator cannot be asked: a coordinator outage must not cut
	// nodes off the relay (existing tunnels keep working), but a removed
	// node is out at most this long after the coordinator comes back.
	admitStaleTTL     = 10 * time.Minute
	admitTimeout      = 5 * time.Second
	admitCacheMax     = 100_000
	admitResponseSize = 4 << 10
)

// httpAdmitter asks the coordinator's admission endpoint whether a node
// key may use the relay: GET {url}?key=nodekey:… with the relay's bearer
// token, answered 200 {"admitted": true|false}. Answers are cached.
type httpAdmitter struct {
	url    *url.URL
	token  string // never logged
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	mu    sync.Mutex
	cache map[key.NodePublic]admitAnswer
}

type admitAnswer struct {
	ok bool
	at time.Time
}

func newHTTPAdmitter(u *url.URL, token string, client *http.Client, log *slog.Logger) *httpAdmitter {
	if client == nil {
		client = &http.Client{Timeout: admitTimeout}
	}
	return &httpAdmitter{url: u, token: token, client: client, log: log, now: time.Now,
		cache: make(map[key.NodePublic]admitAnswer)}
}

// Admit implements derp.Admitter.
func (a *httpAdmitter) Admit(ctx context.Context, k key.NodePublic) (bool, error) {
	now := a.now()
	a.mu.Lock()
	prev, cached := a.cache[k]
	a.mu.Unlock()
	if cached {
		age := now.Sub(prev.at)
		if (prev.ok && age < admitPositiveTTL) || (!prev.ok && age < admitNegativeTTL) {
			return prev.ok, nil
		}
	}
	ok, err := a.ask(ctx, k)
	if err != nil {
		if cached && prev.ok && now.Sub(prev.at) < admitStaleTTL {
			a.log.Warn("coordinator admission check failed; using the last positive answer", "node", k, "err", err)
			return true, nil
		}
		return false, err
	}
	a.mu.Lock()
	if len(a.cache) >= admitCacheMax {
		a.pruneLocked(now)
	}
	a.cache[k] = admitAnswer{ok: ok, at: now}
	a.mu.Unlock()
	return ok, nil
}

// pruneLocked drops answers too old to be used, and everything if that is
// not enough.
func (a *httpAdmitter) pruneLocked(now time.Time) {
	for k, e := range a.cache {
		if (e.ok && now.Sub(e.at) >= admitStaleTTL) || (!e.ok && now.Sub(e.at) >= admitNegativeTTL) {
			delete(a.cache, k)
		}
	}
	if len(a.cache) >= admitCacheMax {
		clear(a.cache)
	}
}

// ask asks the coordinator about k.
func (a *httpAdmitter) ask(ctx context.Context, k key.NodePublic) (bool, error) {
	u := *a.url
	q := u.Query()
	q.Set("key", k.String())
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, admitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, fmt.Errorf("admission request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("ask the coordinator (%s): %w", a.url.Redacted(), err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, admitResponseSize)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		io.Copy(io.Discard, body)
		return false, fmt.Errorf("the coordinator refused the relay's token (HTTP %d): check --admit-token-file", resp.StatusCode)
	default:
		io.Copy(io.Discard, body)
		return false, fmt.Errorf("coordinator admission endpoint %s answered HTTP %d", a.url.Redacted(), resp.StatusCode)
	}
	var ans struct {
		Admitted *bool `json:"admitted"`
	}
	if err := json.NewDecoder(body).Decode(&ans); err != nil {
		return false, fmt.Errorf("coordinator admission answer: %w", err)
	}
	if ans.Admitted == nil {
		return false, fmt.Errorf("coordinator admission answer has no \"admitted\" field")
	}
	return *ans.Admitted, nil
}
