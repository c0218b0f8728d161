package daemon_test

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// sessionGoroutines counts the running session goroutines of every
// daemon in the process.
func sessionGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "node/daemon.(*session).run(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestUpBeforeStart: warrend serves its local API before it resumes the
// last run's session (Start), so a "warren up" can come first. Start must
// then leave the session Up started alone rather than start a second one
// beside it: the first would run on with nobody to stop it (Close stops
// only the second), fighting the second for the node's stream and, in TUN
// mode, holding the device so that the second cannot start its data plane.
func TestUpBeforeStart(t *testing.T) {
	m, k := meshWithKey(t)
	before := sessionGoroutines()
	d, err := daemon.New(daemon.Config{StateDir: t.TempDir(), Endpoints: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := d.Up(ctx, localapi.UpRequest{Coordinator: m.URL, AuthKey: k, Hostname: "laptop"}, nil); err != nil {
		t.Fatal(err)
	}
	d.Start()
	if got := sessionGoroutines() - before; got != 1 {
		t.Errorf("%d sessions running after Up then Start; want 1", got)
	}
	d.Close()
	poll.Until(t, wait, "no session left running after Close", func() error {
		if n := sessionGoroutines() - before; n > 0 {
			return fmt.Errorf("%d sessions still running", n)
		}
		return nil
	})
}
