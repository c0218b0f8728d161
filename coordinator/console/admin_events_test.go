package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// admEvent is one server-sent event as a test reads it.
type admEvent struct {
	name, data string
}

// admStream is an open /admin/events stream.
type admStream struct {
	t      *testing.T
	resp   *http.Response
	events chan admEvent // closed at the stream's end
	cancel context.CancelFunc
}

// admWait bounds how long a test waits for the next event: generous, as
// the streams poll once a second and the machine may be busy.
const admWait = 20 * time.Second

// stream opens /admin/events as c; the caller checks the status.
func (c *admClient) stream(t *testing.T) *admStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.h.http.URL+"/admin/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: cookieInsecure, Value: c.sess.id})
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &admStream{t: t, resp: resp, events: make(chan admEvent, 64), cancel: cancel}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev admEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					s.events <- ev
				}
				ev = admEvent{}
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	return s
}

// next returns the next event named name, skipping others; ok is false
// when the stream ended first.
func (s *admStream) next(name string) (admEvent, bool) {
	s.t.Helper()
	deadline := time.After(admWait)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return admEvent{}, false
			}
			if ev.name == name {
				return ev, true
			}
		case <-deadline:
			s.t.Fatalf("no %q event within %v", name, admWait)
		}
	}
}

func (s *admStream) presence() presenceEvent {
	s.t.Helper()
	ev, ok := s.next("presence")
	if !ok {
		s.t.Fatal("the stream ended")
	}
	var p presenceEvent
	if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
		s.t.Fatal(err)
	}
	return p
}

// TestAdminEvents checks the live updates: the first events give every
// node's presence and the policy's status, then nodes going online and
// offline and a new policy arrive as they happen; a member may not open
// the stream; a session holds at most maxLivePerSession streams; and the
// stream ends when the session ends, and when the console closes.
func TestAdminEvents(t *testing.T) {
	h := newAdmHarness(t, admNode{name: "laptop", user: "ann"}, admNode{name: "db1", user: "root", tags: []string{"tag:db"}})
	laptop := wire.NodeID(h.nodes["laptop"].ID)
	admin := h.as(h.root)
	s := admin.stream(t)
	if s.resp.StatusCode != http.StatusOK || !strings.HasPrefix(s.resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /admin/events: %d %q", s.resp.StatusCode, s.resp.Header.Get("Content-Type"))
	}
	if p := s.presence(); !p.Full || p.Total != 2 || p.Online != 0 || len(p.On) != 0 {
		t.Fatalf("first presence: %+v", p)
	}
	ev, ok := s.next("policy")
	if !ok || !strings.Contains(ev.data, `"rejected":""`) {
		t.Fatalf("first policy event: %+v", ev)
	}

	h.reg.Connected(h.ctx, h.nodes["laptop"].ID, nil, 0)
	if p := s.presence(); p.Full || !slices.Equal(p.On, []wire.NodeID{laptop}) || p.Online != 1 || p.Offline != 1 {
		t.Fatalf("presence after connecting: %+v", p)
	}
	h.reg.Disconnected(h.ctx, h.nodes["laptop"].ID)
	if p := s.presence(); !slices.Equal(p.Off, []wire.NodeID{laptop}) || p.Online != 0 {
		t.Fatalf("presence after disconnecting: %+v", p)
	}
	before := h.pol.Status().Version
	if _, err := h.pol.Apply(h.ctx, "test", []byte(strings.Replace(admPolicy, `"maxDuration": "4h"`, `"maxDuration": "2h"`, 1))); err != nil {
		t.Fatal(err)
	}
	ev, _ = s.next("policy")
	var pe policyEvent
	if err := json.Unmarshal([]byte(ev.data), &pe); err != nil || pe.Version == before || pe.Version != h.pol.Status().Version {
		t.Fatalf("policy event after apply: %+v (was version %d)", pe, before)
	}

	// A member may not listen.
	if m := h.as(h.ann).stream(t); m.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("member: %d, want 403", m.resp.StatusCode)
	}
	// Per session: maxLivePerSession streams, then 429.
	for range maxLivePerSession - 1 {
		if x := admin.stream(t); x.resp.StatusCode != http.StatusOK {
			t.Fatalf("stream within the bound: %d", x.resp.StatusCode)
		}
	}
	if x := admin.stream(t); x.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream past the bound: %d, want 429", x.resp.StatusCode)
	}
	// Another session still may.
	other := h.as(h.root).stream(t)
	if other.resp.StatusCode != http.StatusOK {
		t.Fatalf("another session's stream: %d", other.resp.StatusCode)
	}
	other.presence()

	// Signing out ends the session's streams, with an "end" event.
	h.srv.sessions.end(admin.sess.id)
	if _, ok := s.next("end"); !ok {
		t.Fatal("no end event after the session ended")
	}
	if _, ok := s.next("never"); ok {
		t.Fatal("the stream goes on after the end event")
	}
	// Closing the console ends the rest.
	h.srv.Close()
	if _, ok := other.next("never"); ok {
		t.Fatal("a stream goes on after the console closed")
	}
	if x := h.as(h.root).stream(t); x.resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("stream after Close: %d, want 429", x.resp.StatusCode)
	}
}
