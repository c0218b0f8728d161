package controlclient

import (
	"slices"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
)

func postureAttrs(at time.Time, kv ...string) map[string]wire.PostureValue {
	m := map[string]wire.PostureValue{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = wire.PostureValue{Value: kv[i+1], CollectedAt: at}
	}
	return m
}

// TestPostureReporting: the posture recorded before the first connect
// comes with the map request, a change as a whole report, a collection
// that changed nothing as a heartbeat, and after a reconnect the whole
// report again; custom: attributes are never sent.
func TestPostureReporting(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	c := startClient(t, f, Config{})
	t0 := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	c.SetPosture(postureAttrs(t0, "node:os", "linux", "node:diskEncrypted", "false", "custom:mdmCompliant", "true"))
	conn := f.accept()
	mr := register(t, conn)
	if mr.Posture == nil || mr.Posture.Unchanged || len(mr.Posture.Attrs) != 2 ||
		mr.Posture.Attrs["node:diskEncrypted"].Value != "false" || !mr.Posture.Attrs["node:os"].CollectedAt.Equal(t0) {
		t.Fatalf("map request posture = %+v, want os and diskEncrypted=false collected at %v", mr.Posture, t0)
	}
	if _, ok := mr.Posture.Attrs["custom:mdmCompliant"]; ok {
		t.Fatal("the node reported a custom: attribute")
	}
	poll.UntilTrue(t, wait, "first netmap", func() bool { return c.Netmap() != nil })

	t1 := t0.Add(time.Minute)
	c.SetPosture(postureAttrs(t1, "node:os", "linux", "node:diskEncrypted", "true"))
	u := read[*wire.UpdateRequest](t, conn)
	if u.Posture == nil || u.Posture.Unchanged || u.Posture.Attrs["node:diskEncrypted"].Value != "true" || len(u.Endpoints) != 0 {
		t.Fatalf("update after a change = %+v, want the whole report", u)
	}

	c.SetPosture(postureAttrs(t1.Add(time.Minute), "node:os", "linux", "node:diskEncrypted", "true"))
	if u := read[*wire.UpdateRequest](t, conn); u.Posture == nil || !u.Posture.Unchanged || len(u.Posture.Attrs) != 0 {
		t.Fatalf("update after an unchanged collection = %+v, want a heartbeat", u.Posture)
	}

	// An attribute that disappears is a change (the report replaces).
	c.SetPosture(postureAttrs(t1.Add(2*time.Minute), "node:os", "linux"))
	if u := read[*wire.UpdateRequest](t, conn); u.Posture == nil || u.Posture.Unchanged || len(u.Posture.Attrs) != 1 {
		t.Fatalf("update after an attribute went = %+v, want the whole report of one", u.Posture)
	}

	conn.Close()
	poll.UntilTrue(t, wait, "disconnected", func() bool { return !c.Connected() })
	conn = f.accept()
	if mr := register(t, conn); mr.Posture == nil || len(mr.Posture.Attrs) != 1 || mr.Posture.Attrs["node:os"].Value != "linux" {
		t.Fatalf("map request after reconnect posture = %+v, want the whole report", mr.Posture)
	}
	// Nothing stale follows: the next message is the next change.
	c.SetEndpoints(eps(5), 5)
	if u := read[*wire.UpdateRequest](t, conn); u.Posture != nil {
		t.Fatalf("update after reconnect carries posture %+v, already sent with the map request", u.Posture)
	}
}

// TestSetPostureNeverBlocks: recording posture returns at once while the
// channel is stalled (the coordinator reads nothing).
func TestSetPostureNeverBlocks(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 1)
	c := startClient(t, f, Config{})
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "first netmap", func() bool { return c.Netmap() != nil })
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 200 {
			c.SetPosture(postureAttrs(time.Now(), "node:os", "linux", "node:n", string(rune('a'+i%26))))
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("SetPosture blocked on a stalled channel")
	}
	if got := c.Posture()["node:n"].Value; got != string(rune('a'+199%26)) {
		t.Errorf("latest recorded node:n = %q", got)
	}
}

// TestPostureUpdateKeepsEndpoints: the coordinator takes every update's
// endpoints and home relay as the node's current ones, so an update sent
// for the posture alone (a change or a heartbeat) must carry them too, or
// it would clear the node's endpoints and leave its peers without a path.
func TestPostureUpdateKeepsEndpoints(t *testing.T) {
	t.Parallel()
	f := newCoord(t, 16)
	c := startClient(t, f, Config{})
	c.SetEndpoints(eps(7), 3)
	conn := f.accept()
	register(t, conn)
	poll.UntilTrue(t, wait, "first netmap", func() bool { return c.Netmap() != nil })
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	for i, want := range []string{"report", "heartbeat"} {
		c.SetPosture(postureAttrs(at.Add(time.Duration(i)*time.Minute), "node:os", "linux"))
		u := read[*wire.UpdateRequest](t, conn)
		if u.Posture == nil || u.Posture.Unchanged != (want == "heartbeat") {
			t.Fatalf("update %+v, want the posture %s", u, want)
		}
		if !slices.Equal(u.Endpoints, eps(7)) || u.HomeRelay != 3 {
			t.Errorf("posture %s carries endpoints %v/%d, want the current %v/3", want, u.Endpoints, u.HomeRelay, eps(7))
		}
	}
}
