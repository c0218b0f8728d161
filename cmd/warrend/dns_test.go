package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/warrenmesh/warren/internal/tstest/buildtest"
	"github.com/warrenmesh/warren/internal/tstest/netns"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/node/localapi"
)

// laptopResolvConf is the laptop namespace's resolv.conf before Warren:
// its nameserver is the "system resolver" the test runs on 127.0.0.1.
// dbMeshV4 is db's mesh address: the coordinator hands out addresses in
// order, and db joins second.
const dbMeshV4 = "100.64.0.2"

const laptopResolvConf = "# the laptop's own resolv.conf\nnameserver 127.0.0.1\nsearch lan.example\noptions timeout:2 attempts:2\n"

// TestMagicDNSAcrossNamespaces runs two TUN-mode nodes ("laptop" and
// "db") in namespaces and queries the laptop's MagicDNS with the real dig:
// db.<domain> and db resolve to the peer, the coordinator's extra record
// too, a split-DNS route's names go to its resolver on db through the
// mesh, an unknown mesh name is NXDOMAIN, other names are forwarded to the
// system's resolver, curl http://db/ works without a proxy, a third
// namespace routed to 100.100.100.100 gets no answer, and the laptop's
// resolv.conf is back byte for byte after warren down, after kill -9 and
// a restart (then warren down), and after warrend stops while up.
func TestMagicDNSAcrossNamespaces(t *testing.T) {
	netns.Skip(t)
	if testing.Short() {
		t.Skip("skipping: builds and runs the binaries")
	}
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("skipping: dig is not installed (apt-get install dnsutils)")
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("skipping: curl is not installed (apt-get install curl)")
	}
	bin := buildtest.Build(t, "warren-coordinator", "warrend", "warren")
	laptop, db, outsider := netns.New(t, "b-laptop"), netns.New(t, "b-db"), netns.New(t, "b-outsider")
	netns.Connect(laptop, db, "10.78.0.1/24", "10.78.0.2/24")
	netns.Connect(outsider, laptop, "10.79.0.2/24", "10.79.0.1/24")
	dir := t.TempDir()

	// ip netns exec bind-mounts /etc/netns/<ns>/resolv.conf over
	// /etc/resolv.conf: dig and curl in the laptop's namespace read this
	// file, and warrend manages it (by its real path, so the host's own
	// resolv.conf is never touched).
	etc := filepath.Join("/etc/netns", laptop.Name)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(etc)
		os.Remove("/etc/netns") // only when no one else uses it
	})
	resolvConf := filepath.Join(etc, "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte(laptopResolvConf), 0o644); err != nil {
		t.Fatal(err)
	}
	checkOriginal := func(when string) {
		t.Helper()
		got, err := os.ReadFile(resolvConf)
		if err != nil || string(got) != laptopResolvConf {
			t.Fatalf("%s: resolv.conf is %q (%v), want the original %q", when, got, err, laptopResolvConf)
		}
	}
	waitManaged := func(when string) {
		t.Helper()
		poll.Until(t, 30*time.Second, "warrend to manage resolv.conf "+when, func() error {
			b, _ := os.ReadFile(resolvConf)
			if !strings.Contains(string(b), "nameserver 100.100.100.100") {
				return fmt.Errorf("resolv.conf %q", b)
			}
			return nil
		})
	}

	// The laptop's "system resolver": a DNS server on 127.0.0.1:53 inside
	// its namespace that knows one name.
	var pc net.PacketConn
	if err := laptop.Do(func() (err error) {
		pc, err = net.ListenPacket("udp", "127.0.0.1:53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	upstream := &dns.Server{PacketConn: pc, Handler: answerOne("www.example.test.", net.IPv4(192, 0, 2, 80))}
	go func() { _ = upstream.ActivateAndServe() }()
	defer upstream.Shutdown()

	coord := laptop.Start(filepath.Join(bin, "warren-coordinator"), "serve", "--state-dir", filepath.Join(dir, "coordinator"),
		"--listen", "10.78.0.1:8080", "--bootstrap-user", "admin@warren.internal", "--stun-listen", "",
		"--dns-record", "wiki=192.0.2.81",
		// A split-DNS route to a resolver on db, reached through the mesh.
		"--dns-route", "corp.example="+dbMeshV4+":5353")
	if _, err := coord.WaitFor("Join a node", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	authKey := regexp.MustCompile(`wpk_[a-z0-9]{32}`).FindString(coord.Output())

	warren := filepath.Join(bin, "warren")
	laptopSock := filepath.Join(dir, "laptop.sock")
	laptopArgs := []string{"--state-dir", filepath.Join(dir, "laptop"), "--socket", laptopSock,
		"--tun", "warren0", "--endpoint", "10.78.0.1", "--socks5", "", "--dns", "resolv.conf", "--resolv-conf", resolvConf}
	laptopD := laptop.Start(filepath.Join(bin, "warrend"), laptopArgs...)
	// db's warrend leaves DNS alone: its namespace has no resolv.conf of
	// its own, and the host's must not change.
	dbSock := filepath.Join(dir, "db.sock")
	dbD := db.Start(filepath.Join(bin, "warrend"), "--state-dir", filepath.Join(dir, "db"), "--socket", dbSock,
		"--tun", "warren0", "--endpoint", "10.78.0.2", "--socks5", "", "--dns", "off")
	for _, d := range []*netns.Process{laptopD, dbD} {
		if _, err := d.WaitFor("warrend running", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	out := laptop.Run(warren, "--socket", laptopSock, "up", "--coordinator", "http://10.78.0.1:8080", "--auth-key", authKey, "--hostname", "laptop")
	if want := "resolve through MagicDNS at 100.100.100.100, which the system's DNS (resolv.conf) uses for warren.internal"; !strings.Contains(out, want) {
		t.Errorf("warren up printed %q, want %q", out, want)
	}
	db.Run(warren, "--socket", dbSock, "up", "--coordinator", "http://10.78.0.1:8080", "--auth-key", authKey, "--hostname", "db")

	var dbAddrs []netip.Addr
	poll.Until(t, 30*time.Second, "the laptop to see db", func() error {
		var st localapi.Status
		out, err := laptop.TryRun(warren, "--socket", laptopSock, "status", "--json")
		if err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		for _, p := range st.Peers {
			if p.Name == "db" {
				dbAddrs = nil
				for _, a := range p.Addresses {
					dbAddrs = append(dbAddrs, a.Addr())
				}
				return nil
			}
		}
		return fmt.Errorf("peers %+v", st.Peers)
	})
	dbV4 := dbAddrs[0].String()
	if dbV4 != dbMeshV4 {
		t.Fatalf("db got %s, want %s (the split-DNS route points there)", dbV4, dbMeshV4)
	}
	waitManaged("after warren up")

	// corp.example's resolver, on db's mesh address.
	var corpPC net.PacketConn
	if err := db.Do(func() (err error) {
		corpPC, err = net.ListenPacket("udp", dbMeshV4+":5353")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	corp := &dns.Server{PacketConn: corpPC, Handler: answerOne("intranet.corp.example.", net.IPv4(10, 9, 8, 7))}
	go func() { _ = corp.ActivateAndServe() }()
	defer corp.Shutdown()

	digShort := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(laptop.Run(dig, append([]string{"+short", "+time=3", "+tries=2"}, args...)...))
	}
	// dig with no @server uses the managed resolv.conf, as every app does.
	for _, q := range [][]string{{"db.warren.internal"}, {"DB.Warren.Internal."}, {"db"}, {"@100.100.100.100", "db.warren.internal"}, {"+tcp", "db"}} {
		if got := digShort(q...); got != dbV4 {
			t.Errorf("dig %v = %q, want %s", q, got, dbV4)
		}
	}
	if got := digShort("wiki.warren.internal"); got != "192.0.2.81" {
		t.Errorf("dig wiki.warren.internal (the coordinator's extra record) = %q, want 192.0.2.81", got)
	}
	if got := digShort("www.example.test"); got != "192.0.2.80" {
		t.Errorf("dig www.example.test (forwarded to the system's resolver) = %q, want 192.0.2.80", got)
	}
	// The first packets to db also set up the tunnel (a handshake, maybe
	// through the relay first): dig again until that is done.
	poll.Until(t, 30*time.Second, "intranet.corp.example to resolve through the split-DNS route to db's resolver", func() error {
		out, err := laptop.TryRun(dig, "+short", "+time=3", "+tries=1", "intranet.corp.example")
		if strings.TrimSpace(out) != "10.9.8.7" {
			return fmt.Errorf("dig intranet.corp.example: %q, %v (want 10.9.8.7)", out, err)
		}
		return nil
	})
	if out := laptop.Run(dig, "+time=3", "+tries=2", "nope.warren.internal"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("dig nope.warren.internal: %s, want NXDOMAIN", out)
	}

	// curl http://db/ without a proxy: the name through the system's
	// resolver configuration, the connection through the TUN device.
	var ln net.Listener
	if err := db.Do(func() (err error) {
		ln, err = net.Listen("tcp", dbV4+":80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello db")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if out, err := laptop.TryRun(curl, "-sS", "-m", "10", "http://db/"); err != nil || out != "hello db" {
		t.Errorf("curl http://db/ from the laptop: %q, %v", out, err)
	}

	// Not an open resolver: a host routed to 100.100.100.100 through the
	// laptop (from outside the mesh) gets no answer, over UDP or TCP.
	outsider.Run("ip", "route", "add", "100.100.100.100/32", "via", "10.79.0.1")
	for _, proto := range []string{"+notcp", "+tcp"} {
		if out, err := outsider.TryRun(dig, proto, "+time=1", "+tries=1", "@100.100.100.100", "db.warren.internal"); err == nil || strings.Contains(out, dbV4) {
			t.Errorf("dig %s from outside the laptop answered: %q, %v", proto, out, err)
		}
	}

	// warren down puts resolv.conf back, byte for byte.
	laptop.Run(warren, "--socket", laptopSock, "down")
	checkOriginal("after warren down")

	// Up again, kill -9: the managed file stays; the next start restores
	// it before anything else, resumes, and warren down restores again.
	laptop.Run(warren, "--socket", laptopSock, "up")
	waitManaged("after the second warren up")
	laptopD.Kill()
	if b, _ := os.ReadFile(resolvConf); string(b) == laptopResolvConf {
		t.Fatal("resolv.conf was restored by a warrend killed with SIGKILL?")
	}
	laptopD = laptop.Start(filepath.Join(bin, "warrend"), laptopArgs...)
	if _, err := laptopD.WaitFor("restoring the DNS configuration left by an earlier run", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := laptopD.WaitFor("warrend running", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitManaged("after the restart")
	poll.Until(t, 30*time.Second, "db to resolve after the restart", func() error {
		out, err := laptop.TryRun(dig, "+short", "+time=2", "+tries=1", "db")
		if strings.TrimSpace(out) != dbV4 {
			return fmt.Errorf("dig db: %q, %v", out, err)
		}
		return nil
	})
	laptop.Run(warren, "--socket", laptopSock, "down")
	checkOriginal("after kill -9, a restart and warren down")

	// Stopping warrend while up (SIGTERM, as a service stop) restores too.
	laptop.Run(warren, "--socket", laptopSock, "up")
	waitManaged("after the third warren up")
	if err := laptopD.Stop(); err != nil {
		t.Fatal(err)
	}
	checkOriginal("after warrend stopped (SIGTERM) while up")
}

// answerOne is a DNS server's handler that knows one name's A record and
// answers NXDOMAIN for everything else.
func answerOne(name string, ip net.IP) dns.Handler {
	return dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg)
		resp.SetReply(req)
		if len(req.Question) == 1 && strings.EqualFold(req.Question[0].Name, name) && req.Question[0].Qtype == dns.TypeA {
			resp.Answer = append(resp.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: ip})
		} else {
			resp.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(resp)
	})
}
