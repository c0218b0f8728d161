package daemon_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// stubPosture is a collector whose disk encryption value the test sets;
// it counts its collections.
type stubPosture struct {
	mu        sync.Mutex
	encrypted string
	calls     int
}

func (s *stubPosture) collect(context.Context) map[string]wire.PostureValue {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	now := time.Now().UTC()
	return map[string]wire.PostureValue{
		"node:os":            {Value: "linux", CollectedAt: now},
		"node:diskEncrypted": {Value: s.encrypted, CollectedAt: now},
	}
}

func (s *stubPosture) set(v string) {
	s.mu.Lock()
	s.encrypted = v
	s.mu.Unlock()
}

func (s *stubPosture) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func attr(rep localapi.PostureReport, name string) string {
	for _, a := range rep.Attrs {
		if a.Name == name {
			return a.Value
		}
	}
	return ""
}

// TestPostureCollectedAndShown: a running node collects its posture at
// start and every interval and reports it; the local API shows what it
// reports, and, while the node is down, a fresh collection marked as not
// reported.
func TestPostureCollectedAndShown(t *testing.T) {
	m, k := meshWithKey(t)
	stub := &stubPosture{encrypted: "false"}
	n := startNode(t, t.TempDir(), daemon.Config{PostureCollect: stub.collect, PostureInterval: 20 * time.Millisecond})
	up(t, n, m, "laptop", k)
	ctx := context.Background()
	poll.Until(t, wait, "posture reported", func() error {
		rep, err := n.api.Posture(ctx)
		switch {
		case err != nil:
			return err
		case !rep.Reporting || attr(rep, "node:diskEncrypted") != "false" || attr(rep, "node:os") != "linux":
			return fmt.Errorf("posture %+v", rep)
		}
		return nil
	})
	// Collections go on every interval; a change shows.
	start := stub.count()
	poll.UntilTrue(t, wait, "three more collections", func() bool { return stub.count() >= start+3 })
	stub.set("true")
	poll.Until(t, wait, "the changed value", func() error {
		rep, err := n.api.Posture(ctx)
		if err != nil {
			return err
		}
		if v := attr(rep, "node:diskEncrypted"); v != "true" {
			return fmt.Errorf("diskEncrypted %q", v)
		}
		if rep.Interval != 20*time.Millisecond {
			return fmt.Errorf("interval %v", rep.Interval)
		}
		return nil
	})

	if _, err := n.api.Down(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := n.api.Posture(ctx)
	if err != nil || rep.Reporting || attr(rep, "node:os") != "linux" {
		t.Fatalf("posture while down: %+v, %v (want a fresh collection, not reported)", rep, err)
	}
}

// TestPostureOnNetworkChange: with an interval far beyond the test, the
// node still collects again when its data plane learns its endpoints (a
// network change), besides the collection at start.
func TestPostureOnNetworkChange(t *testing.T) {
	m, k := meshWithKey(t)
	stub := &stubPosture{encrypted: "true"}
	n := startNode(t, t.TempDir(), daemon.Config{PostureCollect: stub.collect, PostureInterval: time.Hour})
	up(t, n, m, "laptop", k)
	poll.UntilTrue(t, wait, "a collection on the endpoints' change", func() bool { return stub.count() >= 2 })
}
