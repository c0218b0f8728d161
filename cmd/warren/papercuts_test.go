package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/localapi"
)

// cliMesh is a real coordinator with ann's laptop (serving a proxy), ann's
// db (no proxy) and bob's secret, which the default policy (each user
// reaches their own nodes) hides from ann's nodes. Each node's local API
// is served on a socket for the CLI.
type cliMesh struct {
	m                 *testmesh.Mesh
	laptop, db        string // sockets
	secret            localapi.PeerStatus
	laptopUp, dbUp    string // what "warren up" printed
	proxy             string
	keyFile, annKey   string
	laptopD, dbDaemon *testmesh.Daemon
}

func newCLIMesh(t *testing.T) *cliMesh {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a mesh")
	}
	m := testmesh.New(t, testmesh.Options{})
	ann, bob := m.User("ann@example.com"), m.User("bob@example.com")
	c := &cliMesh{m: m, annKey: m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})}
	c.keyFile = filepath.Join(t.TempDir(), "ann.key")
	if err := os.WriteFile(c.keyFile, []byte(c.annKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// bob's node joins first, so ann's nodes would see it at once if the
	// policy let them.
	secret := m.AddDaemon("secret")
	st, _, err := secret.Up(localapi.UpRequest{AuthKey: m.AuthKey(registry.AuthKeyRequest{UserID: bob.ID})}, nil)
	if err != nil {
		t.Fatalf("secret up: %v", err)
	}
	c.secret = *st.Self

	c.laptopD, c.dbDaemon = m.AddDaemon("laptop"), m.AddDaemon("db")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	proxyDone := make(chan error, 1)
	go func() { proxyDone <- c.laptopD.ServeProxy(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-proxyDone; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	c.proxy = ln.Addr().String()
	c.laptop, c.db = serveDaemon(t, c.laptopD.Daemon), serveDaemon(t, c.dbDaemon.Daemon)
	// The proxy is registered once ServeProxy runs; wait for it so the up
	// message can name it.
	poll.UntilTrue(t, wait, "the laptop's proxy", func() bool { return c.laptopD.Status(context.Background()).SOCKS5 != "" })

	c.dbUp, _, err = warren(t, "--socket", c.db, "up", "--coordinator", m.URL, "--auth-key-file", c.keyFile, "--hostname", "db")
	if err != nil {
		t.Fatalf("db up: %v", err)
	}
	c.laptopUp, _, err = warren(t, "--socket", c.laptop, "up", "--coordinator", m.URL, "--auth-key-file", c.keyFile, "--hostname", "laptop")
	if err != nil {
		t.Fatalf("laptop up: %v", err)
	}
	poll.UntilTrue(t, wait, "the laptop to see db", func() bool {
		st := c.laptopD.Status(context.Background())
		return len(st.Peers) == 1 && st.Peers[0].Name == "db"
	})
	// The first ping also makes the tunnel; the subtests' pings then
	// answer without a handshake in the way, however busy the machine.
	poll.UntilTrue(t, wait, "db to answer the laptop's ping", func() bool {
		_, _, err := warren(t, "--socket", c.laptop, "ping", "db", "-c", "1")
		return err == nil
	})
	return c
}

// status returns the status of the node at socket.
func status(t *testing.T, socket string) localapi.Status {
	t.Helper()
	out, _, err := warren(t, "--socket", socket, "status", "--json")
	var st localapi.Status
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Self == nil {
		t.Fatalf("status: %q, %v", out, err)
	}
	return st
}

// TestCLIPapercuts runs the node-side commands a new user tripped over
// against a real mesh, each as the user types it.
func TestCLIPapercuts(t *testing.T) {
	c := newCLIMesh(t)
	laptop, db := status(t, c.laptop), status(t, c.db)
	dbV4 := db.Self.Addresses[0].Addr()

	t.Run("up says how apps reach peers", func(t *testing.T) {
		// Userspace with a proxy: the proxy. Without one: warren forward.
		if !strings.Contains(c.laptopUp, "curl --proxy socks5h://"+c.proxy) {
			t.Errorf("laptop up (proxy at %s): %q", c.proxy, c.laptopUp)
		}
		if strings.Contains(c.dbUp, "proxy at") || !strings.Contains(c.dbUp, "warren forward LOCALPORT") {
			t.Errorf("db up (no proxy): %q", c.dbUp)
		}
	})

	t.Run("ip", func(t *testing.T) {
		var want []string
		for _, p := range laptop.Self.Addresses {
			want = append(want, p.Addr().String())
		}
		tests := []struct {
			args []string
			want []string
		}{
			{nil, want},
			{[]string{"-4"}, want[:1]},
			{[]string{"-6"}, want[1:]},
			{[]string{"db", "-4"}, []string{dbV4.String()}},
			{[]string{"db.warren.internal", "-4"}, []string{dbV4.String()}},
		}
		for _, tt := range tests {
			out, _, err := warren(t, append([]string{"--socket", c.laptop, "ip"}, tt.args...)...)
			if got := strings.Fields(out); err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("warren ip %v = %q, %v; want %q", tt.args, got, err, tt.want)
			}
			out, _, err = warren(t, append([]string{"--socket", c.laptop, "ip", "--json"}, tt.args...)...)
			var js ipOutput
			if err != nil || json.Unmarshal([]byte(out), &js) != nil || len(js.Addresses) != len(tt.want) || js.Addresses[0].String() != tt.want[0] {
				t.Errorf("warren ip --json %v = %q, %v; want %q", tt.args, out, err, tt.want)
			}
		}
		if _, _, err := warren(t, "--socket", c.laptop, "ip", "secret"); err == nil || !strings.Contains(err.Error(), "not reachable under the current policy") {
			t.Errorf("warren ip secret: %v", err)
		}
	})

	t.Run("whois", func(t *testing.T) {
		out, _, err := warren(t, "--socket", c.laptop, "whois", dbV4.String())
		if err != nil || !strings.Contains(out, dbV4.String()+" is db (db.") || !strings.Contains(out, "ann@example.com") ||
			!strings.Contains(out, "a peer of this node") || !strings.Contains(out, "Device:") {
			t.Errorf("whois db: %q, %v", out, err)
		}
		out, _, err = warren(t, "--socket", c.laptop, "whois", netip.AddrPortFrom(db.Self.Addresses[1].Addr(), 5432).String(), "--json")
		var js localapi.WhoIs
		if err != nil || json.Unmarshal([]byte(out), &js) != nil || js.Self || js.Node.Name != "db" || js.User != "ann@example.com" || js.Node.ID != db.Self.ID ||
			js.Port != 5432 || js.Via != "mesh" {
			t.Errorf("whois [db v6]:5432 --json: %q, %v", out, err)
		}
		if out, _, err := warren(t, "--socket", c.laptop, "whois", "db"); err != nil || !strings.Contains(out, "db is db (db.") {
			t.Errorf("whois by name: %q, %v", out, err)
		}
		out, _, err = warren(t, "--socket", c.laptop, "whois", laptop.Self.Addresses[0].Addr().String(), "--json")
		if err != nil || json.Unmarshal([]byte(out), &js) != nil || !js.Self || js.Node.Name != "laptop" {
			t.Errorf("whois (own address) --json: %q, %v", out, err)
		}
		for _, tt := range []struct{ addr, want string }{
			{c.secret.Addresses[0].Addr().String(), "no such node, or not reachable under the current policy"},
			{"100.64.255.254", "no such node, or not reachable under the current policy"},
			{"192.0.2.1", "not a Warren address"},
			{"nosuch", "no such node, or not reachable under the current policy"},
		} {
			out, _, err := warren(t, "--socket", c.laptop, "whois", tt.addr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("whois %s: %q, %v; want an error containing %q", tt.addr, out, err, tt.want)
			}
			// Exit status 1: not found; 2: not an address to ask about.
			wantCode := 1
			if strings.Contains(tt.want, "not a Warren address") {
				wantCode = 2
			}
			if ee := (*cli.ExitError)(nil); !errors.As(err, &ee) || ee.Code != wantCode {
				t.Errorf("whois %s: exit status from %v, want %d", tt.addr, err, wantCode)
			}
		}
	})

	t.Run("a node hidden by the policy", func(t *testing.T) {
		// The node is told nothing of secret, so it cannot tell it from
		// a name nobody has: the error names both, the same for each.
		for _, name := range []string{"secret", "nosuch"} {
			const want = ": no such node, or not reachable under the current policy"
			_, _, err := warren(t, "--socket", c.laptop, "forward", "0", name+":22")
			if err == nil || !strings.Contains(err.Error(), `"`+name+`"`+want) {
				t.Errorf("forward to %s: %v; want an error containing %q", name, err, want)
			}
			_, _, err = warren(t, "--socket", c.laptop, "ping", name, "-c", "1")
			if err == nil || !strings.Contains(err.Error(), `"`+name+`"`+want) {
				t.Errorf("ping %s: %v; want an error containing %q", name, err, want)
			}
		}
		_, _, err := warren(t, "--socket", c.laptop, "ping", c.secret.Addresses[0].Addr().String(), "-c", "1")
		if err == nil || !strings.Contains(err.Error(), "address "+c.secret.Addresses[0].Addr().String()+": no such node, or not reachable") {
			t.Errorf("ping secret's address: %v", err)
		}
	})

	t.Run("ping exit status", func(t *testing.T) {
		// db answers pings; nothing listens on its port 9, so every TCP
		// connect fails (refused at once): a script must see the failure.
		// Three pings each, so one slow answer on a busy machine does not
		// decide the test.
		for _, args := range [][]string{{"ping", "db", "-c", "3", "--tcp", "9"}, {"ping", "db", "-c", "3", "--tcp", "9", "--json"}} {
			out, _, err := warren(t, append([]string{"--socket", c.laptop}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "no TCP connection to db port 9") {
				t.Errorf("warren %v: %q, %v; want an error", args, out, err)
			}
			if !strings.Contains(out, "pong") && !strings.Contains(out, `"rttNs"`) {
				t.Errorf("warren %v: %q; want the pong still reported", args, out)
			}
		}
		if out, _, err := warren(t, "--socket", c.laptop, "ping", "db", "-c", "3", "--json"); err != nil {
			t.Errorf("ping db --json: %q, %v", out, err)
		}
	})

	t.Run("logout advice holds", func(t *testing.T) {
		out, _, err := warren(t, "--socket", c.db, "logout")
		if err != nil {
			t.Fatalf("logout: %v", err)
		}
		// The advice names the coordinator and the command to run again.
		cmd := "warren up --coordinator " + c.m.URL + " --auth-key-file FILE"
		if !strings.Contains(out, cmd) || !strings.Contains(out, "asked the coordinator to expire this node") || !strings.Contains(out, "same node (db, "+dbV4.String()) {
			t.Fatalf("logout: %q; want the command %q and the same node back", out, cmd)
		}
		// Status agrees: plain warren up is not enough.
		if out, _, err := warren(t, "--socket", c.db, "status"); err != nil || !strings.Contains(out, "warren up --coordinator URL") {
			t.Errorf("status after logout: %q, %v; want it to ask for warren up --coordinator URL", out, err)
		}
		// What the old advice said fails: there is no coordinator any more.
		if _, _, err := warren(t, "--socket", c.db, "up", "--auth-key-file", c.keyFile); err == nil || !strings.Contains(err.Error(), "--coordinator") {
			t.Fatalf("up without --coordinator after logout: %v; want it to ask for --coordinator", err)
		}
		// The advice, followed word for word, brings back the same node.
		args := strings.Fields(strings.TrimPrefix(cmd, "warren "))
		args[len(args)-1] = c.keyFile
		if _, _, err := warren(t, append([]string{"--socket", c.db}, args...)...); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		again := status(t, c.db)
		if again.Self.ID != db.Self.ID || again.Self.Name != "db" || again.Self.Addresses[0] != db.Self.Addresses[0] {
			t.Fatalf("after logout and up: node %d %s %v; want the same node %d %s %v", again.Self.ID, again.Self.Name, again.Self.Addresses,
				db.Self.ID, db.Self.Name, db.Self.Addresses)
		}
	})

	t.Run("ping with no answer", func(t *testing.T) {
		// db stops answering (down); the laptop still knows it.
		if _, _, err := warren(t, "--socket", c.db, "down"); err != nil {
			t.Fatal(err)
		}
		if out, _, err := warren(t, "--socket", c.db, "status"); err != nil || !strings.Contains(out, "Stopped: run warren up to reconnect to "+c.m.URL) {
			t.Errorf("status after down: %q, %v", out, err)
		}
		for _, args := range [][]string{{"ping", "db", "-c", "1"}, {"ping", "db", "-c", "1", "--json"}} {
			out, _, err := warren(t, append([]string{"--socket", c.laptop}, args...)...)
			if err == nil || !strings.Contains(err.Error(), "no answer from db") {
				t.Errorf("warren %v with db down: %q, %v; want an error", args, out, err)
			}
		}
		// A logout while down cannot tell the coordinator, and says so.
		out, _, err := warren(t, "--socket", c.db, "logout")
		if err != nil || !strings.Contains(out, "on this machine only") || !strings.Contains(out, "warren up --coordinator "+c.m.URL) {
			t.Errorf("logout while down: %q, %v", out, err)
		}
	})
}

// TestLogoutMessage: what "warren logout" prints is true in each state
// it can find the node in. TestCLIPapercuts follows the advice.
func TestLogoutMessage(t *testing.T) {
	self := &localapi.PeerStatus{Name: "db", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}
	const url = "https://warren.example.com"
	tests := []struct {
		name       string
		before     localapi.Status
		want, dont []string
	}{
		{"connected", localapi.Status{State: localapi.StateRunning, Coordinator: url, Connected: true, Self: self},
			[]string{"asked the coordinator to expire this node (db, 100.64.0.2)", "warren up --coordinator " + url + " --auth-key-file FILE", "the same node (db, 100.64.0.2)"},
			[]string{"this machine only", "as a new node"}},
		{"coordinator unreachable", localapi.Status{State: localapi.StateRunning, Coordinator: url, Self: self},
			[]string{"on this machine only", "stays registered there", "warren up --coordinator " + url, "the same node (db, 100.64.0.2)"},
			[]string{"asked the coordinator"}},
		{"down", localapi.Status{State: localapi.StateStopped, Coordinator: url},
			[]string{"on this machine only", "warren up --coordinator " + url, "the same node (same name and address)"},
			[]string{"asked the coordinator"}},
		{"never joined", localapi.Status{State: localapi.StateStopped},
			[]string{"had not joined a coordinator"}, []string{"warren up"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := logoutMessage(tt.before)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("logoutMessage = %q; want it to contain %q", got, w)
				}
			}
			for _, d := range tt.dont {
				if strings.Contains(got, d) {
					t.Errorf("logoutMessage = %q; want no %q", got, d)
				}
			}
		})
	}
}

// TestUpMessage: what "warren up" prints is true for each data plane mode.
// TestCLIPapercuts checks userspace mode against real nodes, and
// TestTUNModeAcrossNamespaces (cmd/warrend) TUN mode.
func TestUpMessage(t *testing.T) {
	self := &localapi.PeerStatus{Name: "laptop", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.1/32")}}
	peers := []localapi.PeerStatus{{Name: "db", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.2/32")}}}
	tests := []struct {
		name       string
		st         localapi.Status
		want, dont []string
	}{
		{"userspace with proxy", localapi.Status{Mode: "userspace", SOCKS5: "127.0.0.1:1055", Self: self, Peers: peers, Domain: "warren.internal"},
			[]string{"Up: laptop (100.64.0.1)", "curl --proxy socks5h://127.0.0.1:1055 http://db/"}, []string{"directly"}},
		{"userspace without proxy", localapi.Status{Mode: "userspace", Self: self, Peers: peers},
			[]string{"No proxy runs", "warren forward LOCALPORT db:PORT"}, []string{"proxy at", "directly"}},
		{"tun with proxy", localapi.Status{Mode: "tun:warren0", SOCKS5: "127.0.0.1:1055", Self: self, Peers: peers, Domain: "warren.internal"},
			[]string{"directly at their mesh addresses through warren0, e.g. db at 100.64.0.2", "names (db, db.warren.internal) resolve only through the proxy at 127.0.0.1:1055"},
			[]string{"curl --proxy"}},
		{"tun without proxy or peers", localapi.Status{Mode: "tun:wg0", Self: self},
			[]string{"directly at their mesh addresses through wg0 (warren status", "no system DNS"}, []string{"proxy"}},
		{"tun with MagicDNS", localapi.Status{Mode: "tun:warren0", MagicDNS: "resolv.conf", Self: self, Peers: peers, Domain: "warren.internal"},
			[]string{"Names (db, db.warren.internal) resolve through MagicDNS at 100.100.100.100, which the system's DNS (resolv.conf) uses for warren.internal"},
			[]string{"no system DNS", "proxy"}},
		{"tun with MagicDNS off", localapi.Status{Mode: "tun:warren0", MagicDNS: "off", Self: self, Peers: peers, Domain: "warren.internal"},
			[]string{"MagicDNS answers names (db, db.warren.internal) at 100.100.100.100; the system's DNS is left alone"},
			[]string{"no system DNS", "proxy"}},
		{"tun with MagicDNS unconfigured", localapi.Status{Mode: "tun:warren0", MagicDNS: "unconfigured", SOCKS5: "127.0.0.1:1055", Self: self, Peers: peers, Domain: "warren.internal"},
			[]string{"pointing the system's DNS at it failed", "resolve only through the proxy at 127.0.0.1:1055"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := upMessage(tt.st)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("upMessage = %q; want it to contain %q", got, w)
				}
			}
			for _, d := range tt.dont {
				if strings.Contains(got, d) {
					t.Errorf("upMessage = %q; want no %q", got, d)
				}
			}
		})
	}
}
