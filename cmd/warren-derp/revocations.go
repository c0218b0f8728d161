package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
)

const (
	// revocationPollTimeout bounds one long poll; the coordinator answers
	// within 25 s even when nothing was revoked.
	revocationPollTimeout = 40 * time.Second
	revocationBackoffMin  = time.Second
	revocationBackoffMax  = 30 * time.Second
	revocationBodySize    = 1 << 20
)

// revocations is what one poll learned.
type revocations struct {
	epoch string
	next  uint64
	keys  []key.NodePublic
	reset bool
}

// revocationAnswer is the coordinator's answer at
// /api/v1/relay/revocations (see the coordinator's relayrevoke.go).
type revocationAnswer struct {
	Epoch string   `json:"epoch"`
	Next  *uint64  `json:"next"`
	Keys  []string `json:"keys"`
	Reset bool     `json:"reset"`
}

// revocationsURL is the coordinator's revocation endpoint beside the
// admission endpoint (…/relay/admit → …/relay/revocations).
func revocationsURL(admit *url.URL) *url.URL {
	return admit.ResolveReference(&url.URL{Path: "revocations"})
}

// forget drops the cached answer for k, so that its next connection asks
// the coordinator.
func (a *httpAdmitter) forget(k key.NodePublic) {
	a.mu.Lock()
	delete(a.cache, k)
	a.mu.Unlock()
}

// forgetAll drops every cached answer.
func (a *httpAdmitter) forgetAll() {
	a.mu.Lock()
	clear(a.cache)
	a.mu.Unlock()
}

// watchRevocations long-polls the coordinator for node keys that lost
// admission and disconnects them from relay at once (the periodic
// revalidation stays as the backstop). It returns when ctx ends.
func (a *httpAdmitter) watchRevocations(ctx context.Context, relay *derp.Server) {
	u := revocationsURL(a.url)
	client := &http.Client{Transport: a.client.Transport} // no overall timeout: each poll has its own
	var epoch string
	var since uint64
	backoff := revocationBackoffMin
	for ctx.Err() == nil {
		ans, err := a.pollRevocations(ctx, client, u, epoch, since)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("coordinator revocations unavailable; removed nodes leave the relay at the next recheck",
				"url", u.Redacted(), "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, revocationBackoffMax)
			continue
		}
		backoff = revocationBackoffMin
		for _, k := range ans.keys {
			a.forget(k)
			relay.Disconnect(k)
		}
		if ans.reset {
			// Revocations may have been missed (a first poll, a restarted
			// coordinator, or a long outage): recheck everyone.
			a.forgetAll()
			relay.Revalidate(ctx)
		}
		epoch, since = ans.epoch, ans.next
	}
}

// pollRevocations asks once, waiting for the coordinator's answer.
func (a *httpAdmitter) pollRevocations(ctx context.Context, client *http.Client, u *url.URL, epoch string, since uint64) (revocations, error) {
	var ans revocations
	q := url.Values{}
	if epoch != "" {
		q.Set("epoch", epoch)
		q.Set("since", fmt.Sprint(since))
	}
	uu := *u
	uu.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, revocationPollTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uu.String(), nil)
	if err != nil {
		return ans, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, revocationBodySize)
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, body)
		return ans, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return decodeRevocations(body)
}

// decodeRevocations parses the coordinator's answer; keys that do not
// parse are left out.
func decodeRevocations(r io.Reader) (revocations, error) {
	var ans revocationAnswer
	if err := json.NewDecoder(r).Decode(&ans); err != nil {
		return revocations{}, fmt.Errorf("revocations answer: %w", err)
	}
	if ans.Next == nil || ans.Epoch == "" {
		return revocations{}, errors.New("revocations answer without epoch or next")
	}
	out := revocations{epoch: ans.Epoch, next: *ans.Next, reset: ans.Reset}
	for _, s := range ans.Keys {
		if k, err := key.ParsePublic[key.NodeKind](s); err == nil {
			out.keys = append(out.keys, k)
		}
	}
	return out, nil
}
