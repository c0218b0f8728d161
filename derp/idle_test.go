package derp

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestIdleClientHoldsLittle checks what makes an idle client cheap (see
// BenchmarkIdleClientRSS in internal/tstest/relayrss): once admitted, a
// client is served by two goroutines of the relay's own (the HTTP handler
// has returned, so net/http's request buffers and the handler's stack are
// gone), and its queues hold no buffer beyond a small one for control
// frames.
func TestIdleClientHoldsLittle(t *testing.T) {
	const n = 20
	relay := newRelay(t, ServerConfig{})
	for range n {
		c := relay.dial(t, key.NewNode())
		barrier(t, c) // a Ping answered: the client's reader and writer both ran
	}
	// The handlers return right after starting each client's goroutine.
	poll.Until(t, 10*time.Second, "relay HTTP handlers to return for idle clients", func() error {
		if n := countGoroutines("derp.(*Server).ServeHTTP"); n > 0 {
			return fmt.Errorf("%d still running", n)
		}
		return nil
	})
	if got := countGoroutines("derp.(*sclient).readLoop", "derp.(*sclient).writeLoop"); got != 2*n {
		t.Errorf("%d client goroutines for %d clients, want %d", got, n, 2*n)
	}
	for _, c := range relay.snapshot() {
		c.qmu.Lock()
		data, disco, ctrl := len(c.data.buf), len(c.disco.buf), len(c.ctrl.buf)
		c.qmu.Unlock()
		if data != 0 || disco != 0 || ctrl > fifoKeepCap {
			t.Errorf("idle client %v holds queue buffers: data %d, disco %d, control %d slots; want 0, 0, ≤ %d",
				c.key.ShortString(), data, disco, ctrl, fifoKeepCap)
		}
	}
}
