package daemon_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestUpFailsWhenDataPlaneCannotStart: when the data plane cannot start
// (its fixed UDP port is taken, the TUN device cannot be made), up fails
// at once with the real error instead of waiting for its timeout with
// "still connecting", and status shows that error.
func TestUpFailsWhenDataPlaneCannotStart(t *testing.T) {
	m, k := meshWithKey(t)
	taken, err := net.ListenUDP("udp", &net.UDPAddr{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := uint16(taken.LocalAddr().(*net.UDPAddr).Port)
	tests := []struct {
		name string
		cfg  daemon.Config
		want string // in the error
	}{
		{"UDP port in use", daemon.Config{ListenPort: port}, "address already in use"},
		// Longer than a Linux interface name may be: refused before any
		// privilege matters, so the test means the same as root or not.
		{"bad TUN name", daemon.Config{TUN: "wg-g-name-longer-than-ifnamsiz"}, "tun"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, t.TempDir(), tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			_, err := n.api.Up(ctx, localapi.UpRequest{Coordinator: m.URL, AuthKey: k, Hostname: "srv"}, nil)
			if err == nil {
				t.Fatal("up succeeded without a data plane")
			}
			if ctx.Err() != nil || strings.Contains(err.Error(), "still connecting") || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("up waited for its timeout instead of failing at once: %v", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), tt.want) || !strings.Contains(err.Error(), "data plane") {
				t.Errorf("up error %q does not name the data plane and %q", err, tt.want)
			}
			t.Logf("up failed at once: %v", err)
			st, err := n.api.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.State != localapi.StateError || !strings.Contains(strings.ToLower(st.Error), tt.want) {
				t.Errorf("status after the failure: state %q, error %q; want the data plane's error", st.State, st.Error)
			}
		})
	}
}
