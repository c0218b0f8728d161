package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// This file is the admin pages' live updates: GET /admin/events, a
// stream of server-sent events that static/live.js applies to the
// elements a page marks with data-live attributes, so that nodes going
// online or offline and the policy's status show without reloading (the
// pages work the same without it).
//
// Each stream polls: once a second it reads every node's presence from
// the netmap engine (one pass under the engine's lock, no store query)
// and the policy manager's status, and sends what changed since its last
// poll. Polling keeps the engine and the registry free of subscribers; its
// cost is bounded by the bound on streams (maxLiveStreams in all,
// maxLivePerSession per session). A stream ends when the browser goes,
// when its session ends or its user is no longer an enabled admin (checked
// every poll, without counting as use of the session), when the console
// is closed, or on a write that does not finish within liveWriteTimeout.

const (
	maxLiveStreams    = 64
	maxLivePerSession = 4
	livePoll          = time.Second
	liveHeartbeat     = 15 * time.Second
	liveWriteTimeout  = 10 * time.Second
)

// liveStreams counts the open streams; its zero value is ready.
type liveStreams struct {
	mu        sync.Mutex
	total     int
	bySession map[string]int
	done      chan struct{} // closed by Close
	closed    bool
}

// doneChan returns the channel Close closes.
func (l *liveStreams) doneChan() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	return l.done
}

// acquire takes a stream slot for session id (false: none left).
func (l *liveStreams) acquire(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.total >= maxLiveStreams || l.bySession[id] >= maxLivePerSession {
		return false
	}
	if l.bySession == nil {
		l.bySession = map[string]int{}
	}
	l.total++
	l.bySession[id]++
	return true
}

func (l *liveStreams) release(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.bySession[id]--; l.bySession[id] <= 0 {
		delete(l.bySession, id)
	}
}

// Close ends every live stream and refuses new ones (the pages still
// work). The coordinator calls it when it shuts down, so that a graceful
// shutdown does not wait on open streams.
func (s *Server) Close() {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.done == nil {
		s.live.done = make(chan struct{})
	}
	if !s.live.closed {
		s.live.closed = true
		close(s.live.done)
	}
}

// alive reports whether the session with ID id is live, without marking
// it used: a stream left open must not keep an idle session alive.
func (ss *sessions) alive(id string) bool {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[id]
	return s != nil && now.Sub(s.used) <= ss.idle && now.Sub(s.created) <= ss.max
}

// presenceEvent is the data of a "presence" event: with Full, On lists
// every online node (the others are offline); otherwise the nodes that
// came online (On) and went offline (Off) since the last event.
type presenceEvent struct {
	Full    bool          `json:"full,omitempty"`
	On      []wire.NodeID `json:"on"`
	Off     []wire.NodeID `json:"off"`
	Online  int           `json:"online"`
	Offline int           `json:"offline"`
	Total   int           `json:"total"`
}

// policyEvent is the data of a "policy" event: the policy in force and
// the rejected file, if any.
type policyEvent struct {
	Version  int64  `json:"version"`
	Hash     string `json:"hash"`
	Author   string `json:"author"`
	Rejected string `json:"rejected"` // the error, "" when none
}

func (s *Server) eventRoutes() {
	s.handle("GET "+Prefix+"events", roleAdmin, s.events)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request, p *page) {
	if !s.live.acquire(p.Session.id) {
		w.Header().Set("Retry-After", "30")
		http.Error(w, "too many live update streams: close some console tabs", http.StatusTooManyRequests)
		return
	}
	defer s.live.release(p.Session.id)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	lastWrite := time.Now()
	send := func(event string, data any) error {
		if err := rc.SetWriteDeadline(time.Now().Add(liveWriteTimeout)); err != nil {
			return err
		}
		var b []byte
		if data != nil {
			var err error
			if b, err = json.Marshal(data); err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
				return err
			}
		} else if _, err := fmt.Fprintf(w, ": %s\n\n", event); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		lastWrite = time.Now()
		return nil
	}
	st := liveState{online: map[wire.NodeID]bool{}}
	ctx, done := r.Context(), s.live.doneChan()
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	for first := true; ; first = false {
		if !first && !s.stillAdmin(ctx, p) {
			_ = send("end", map[string]string{"reason": "signed out"})
			return
		}
		pe, changed := st.poll(s, first)
		var err error
		if changed {
			err = send("presence", pe)
		}
		if pol, ok := st.policy(s, first); ok && err == nil {
			err = send("policy", pol)
		}
		if err == nil && time.Since(lastWrite) >= liveHeartbeat {
			err = send("ping", nil)
		}
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-tick.C:
		}
	}
}

// stillAdmin reports whether p's session is live and its user is still
// an enabled admin.
func (s *Server) stillAdmin(ctx context.Context, p *page) bool {
	if !s.sessions.alive(p.Session.id) {
		return false
	}
	u, err := s.cfg.Store.GetUser(ctx, p.User.ID)
	return err == nil && !u.Disabled && u.Role == store.RoleAdmin
}

// liveState is what one stream last sent.
type liveState struct {
	online    map[wire.NodeID]bool
	policyKey string
}

// poll reads every node's presence and returns the event that brings the
// browser up to date (full: everything), and whether there is one.
func (st *liveState) poll(s *Server, full bool) (presenceEvent, bool) {
	var ev presenceEvent
	seen := make(map[wire.NodeID]bool, len(st.online))
	s.cfg.Engine.Presence(func(id wire.NodeID, online bool) {
		seen[id] = online
	})
	for id, online := range seen {
		ev.Total++
		if online {
			ev.Online++
		} else {
			ev.Offline++
		}
		was, known := st.online[id]
		switch {
		case full && online:
			ev.On = append(ev.On, id)
		case full:
		case online && (!known || !was):
			ev.On = append(ev.On, id)
		case !online && known && was:
			ev.Off = append(ev.Off, id)
		}
	}
	for id, was := range st.online {
		if _, ok := seen[id]; !ok && was {
			ev.Off = append(ev.Off, id) // deleted: no longer online
		}
	}
	countsChanged := len(seen) != len(st.online)
	st.online = seen
	slices.Sort(ev.On)
	slices.Sort(ev.Off)
	if ev.On == nil {
		ev.On = []wire.NodeID{}
	}
	if ev.Off == nil {
		ev.Off = []wire.NodeID{}
	}
	ev.Full = full
	return ev, full || len(ev.On) > 0 || len(ev.Off) > 0 || countsChanged
}

// policy returns the policy event when the status changed since the last
// (or first is set).
func (st *liveState) policy(s *Server, first bool) (policyEvent, bool) {
	ps := s.cfg.Policy.Status()
	ev := policyEvent{Version: ps.Version, Hash: ps.Hash, Author: ps.Author}
	if ps.Rejected != nil {
		ev.Rejected = ps.Rejected.Error
	}
	key := fmt.Sprintf("%d/%s/%s", ev.Version, ev.Hash, ev.Rejected)
	if !first && key == st.policyKey {
		return ev, false
	}
	st.policyKey = key
	return ev, true
}
