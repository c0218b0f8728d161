package daemon

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestFlowSpoolStatus: the daemon keeps its flow spool in the state dir
// (64 MiB unless told), shows it in its status (pending records, drops)
// and keeps it across restarts; FlowSpoolSize < 0 turns it off.
func TestFlowSpoolStatus(t *testing.T) {
	dir := t.TempDir()
	d, err := New(Config{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st := d.Status(context.Background()).FlowSpool
	if st == nil || st.Max != 64<<20 || st.Pending != 0 {
		t.Fatalf("fresh daemon's spool status: %+v", st)
	}
	at := time.Now()
	d.flows.Append([]wire.FlowRecord{{ID: "1-0-1", Start: at, End: at, Src: netip.MustParseAddrPort("100.64.0.2:1"),
		Dst: netip.MustParseAddrPort("100.64.0.1:2"), Verdict: "accept"}})
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d, err = New(Config{StateDir: dir, FlowSpoolSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if st := d.Status(context.Background()).FlowSpool; st == nil || st.Pending != 1 || st.Max != 1<<20 {
		t.Fatalf("after a restart: %+v, want the record pending", st)
	}
	off, err := New(Config{StateDir: t.TempDir(), FlowSpoolSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if st := off.Status(context.Background()).FlowSpool; st != nil {
		t.Fatalf("flow logs off, yet status %+v", st)
	}
}
