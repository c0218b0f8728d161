package coordinator_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/coordinator/export"
	"github.com/warrenmesh/warren/internal/wire"
)

// TestNewFailsCleanly runs every way coordinator.New can fail once it has
// started opening things, and checks that each failure says what is wrong
// and leaves nothing behind: no goroutine (goleak), no socket (the STUN
// port can be bound again at once) and a state directory a corrected New
// opens.
func TestNewFailsCleanly(t *testing.T) {
	closedTCP := func(t *testing.T) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	tests := []struct {
		name string
		// breakIt makes cfg fail; fix undoes what it did outside cfg
		// (the corrected New gets the config from before breakIt).
		breakIt func(t *testing.T, cfg *coordinator.Config)
		fix     func(t *testing.T, cfg *coordinator.Config)
		want    []string // in the error
		// portTaken: the test holds the STUN port itself.
		portTaken bool
	}{
		{
			name: "state dir is a file",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				writeFile(t, filepath.Join(cfg.StateDir, "file"), "x", 0o600)
				cfg.StateDir = filepath.Join(cfg.StateDir, "file")
			},
			want: []string{"create state dir"},
		},
		{
			name: "coordinator key readable by others",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				writeFile(t, filepath.Join(cfg.StateDir, "coordinator.key"), "garbage\n", 0o644)
			},
			fix: func(t *testing.T, cfg *coordinator.Config) {
				os.Remove(filepath.Join(cfg.StateDir, "coordinator.key"))
			},
			want: []string{"coordinator.key"},
		},
		{
			name: "STUN port in use",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				pc, err := net.ListenPacket("udp", cfg.Relay.STUNListen)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pc.Close() })
			},
			want:      []string{"STUN server: listen", "address already in use"},
			portTaken: true,
		},
		{
			name: "relay regions with one ID twice",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				cfg.Relay.URL = "http://127.0.0.1:1/derp"
				cfg.Relay.RegionID = 7
				cfg.Relay.Regions = []wire.DERPRegion{{ID: 7, Code: "other", URL: "https://relay.example.com"}}
			},
			want: []string{"region IDs must be positive and unique"},
		},
		{
			name: "policy file broken",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				writeFile(t, cfg.PolicyPath, "{ this is not a policy", 0o600)
			},
			fix: func(t *testing.T, cfg *coordinator.Config) {
				os.Remove(cfg.PolicyPath)
			},
			want: []string{"no valid policy to start with"},
		},
		{
			name: "OIDC without a client ID",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				cfg.Login = coordinator.LoginConfig{PublicURL: "http://127.0.0.1:1",
					OIDC: &coordinator.OIDCConfig{Issuer: "http://" + closedTCP(t)}}
			},
			want: []string{"OIDC login", "missing ClientID"},
		},
		{
			name: "login without a public URL",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				cfg.Login = coordinator.LoginConfig{Local: true}
			},
			want: []string{"public URL is required"},
		},
		{
			// The OIDC login is made first and, with its provider down,
			// keeps looking for it in a goroutine of its own; the local
			// login then refuses the URL (it has a user name in it).
			name: "OIDC provider down and local login refuses the URL",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				cfg.Login = coordinator.LoginConfig{PublicURL: "http://someone@127.0.0.1:1", Local: true,
					OIDC: &coordinator.OIDCConfig{Issuer: "http://" + closedTCP(t), ClientID: "warren"}}
			},
			want: []string{"local login: base URL", "must be an absolute http(s) URL"},
		},
		{
			// The log sinks open last: everything before is undone.
			name: "log sink secret file missing",
			breakIt: func(t *testing.T, cfg *coordinator.Config) {
				sink, err := export.ParseURL("http://127.0.0.1:1/hook?secret-file=" + filepath.Join(cfg.StateDir, "no-such.secret"))
				if err != nil {
					t.Fatal(err)
				}
				cfg.LogSinks = []export.SinkConfig{sink}
			},
			want: []string{"log sink http://127.0.0.1:1/hook", "read secret file"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			dir := t.TempDir()
			stun := freeUDP(t)
			cfg := coordinator.Config{StateDir: dir, PolicyPath: filepath.Join(dir, "policy.hujson"),
				Relay: coordinator.RelayConfig{STUNListen: stun}}
			good := cfg
			tt.breakIt(t, &cfg)
			c, err := coordinator.New(context.Background(), cfg)
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: %v; want it to say %q", err, w)
				}
			}
			if !tt.portTaken {
				// The failed New holds no socket: the port is free again.
				pc, err := net.ListenPacket("udp", stun)
				if err != nil {
					t.Errorf("after the failed New: %v", err)
				} else {
					pc.Close()
				}
			}
			goleak.VerifyNone(t, before) // nothing the failed New started runs on
			if tt.fix != nil {
				tt.fix(t, &good)
			}
			if tt.portTaken {
				good.Relay.STUNListen = freeUDP(t)
			}
			c, err = coordinator.New(context.Background(), good)
			if err != nil {
				t.Fatalf("New after the failure was fixed: %v", err)
			}
			c.Close()
		})
	}
}

// freeUDP returns a loopback UDP address nothing listens on right now.
func freeUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
