package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// rsyslog is a real rsyslogd (Debian's rsyslog package) listening on
// loopback TCP and UDP ports, writing what it parsed of each message to
// a file per transport as "version|app-name|msgid|structured-data|msg".
type rsyslog struct {
	tcpAddr, udpAddr string
	tcpOut, udpOut   string
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		must(t, err)
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr != nil {
			t.Skip("rsyslogd not installed (Debian package rsyslog; .ci/run installs it)")
		}
		bin = "/usr/sbin/rsyslogd"
	}
	dir := t.TempDir()
	tcpPort, udpPort := freePort(t, "tcp"), freePort(t, "udp")
	r := &rsyslog{tcpAddr: fmt.Sprintf("127.0.0.1:%d", tcpPort), udpAddr: fmt.Sprintf("127.0.0.1:%d", udpPort),
		tcpOut: filepath.Join(dir, "tcp.log"), udpOut: filepath.Join(dir, "udp.log")}
	conf := fmt.Sprintf(`global(workDirectory=%[1]q maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
template(name="parsed" type="string" string="%%protocol-version%%|%%app-name%%|%%msgid%%|%%structured-data%%|%%msg%%\n")
ruleset(name="tcp") { action(type="omfile" file=%[2]q template="parsed") }
ruleset(name="udp") { action(type="omfile" file=%[3]q template="parsed") }
input(type="imtcp" address="127.0.0.1" port="%[4]d" ruleset="tcp")
input(type="imudp" address="127.0.0.1" port="%[5]d" ruleset="udp")
`, dir, r.tcpOut, r.udpOut, tcpPort, udpPort)
	confPath := filepath.Join(dir, "rsyslog.conf")
	must(t, os.WriteFile(confPath, []byte(conf), 0o600))
	var stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("rsyslogd output:\n%s", stderr.String())
		}
	})
	poll.Until(t, 20*time.Second, "rsyslogd listening on "+r.tcpAddr, func() error {
		select {
		case <-exited:
			t.Fatalf("rsyslogd exited: %s", stderr.String())
		default:
		}
		c, err := net.Dial("tcp", r.tcpAddr)
		if err == nil {
			c.Close()
		}
		return err
	})
	// The UDP input is ready once a probe sent to it is in its file.
	probe, err := net.Dial("udp", r.udpAddr)
	must(t, err)
	defer probe.Close()
	poll.Until(t, 20*time.Second, "rsyslogd receiving on udp "+r.udpAddr, func() error {
		probe.Write([]byte("<14>1 2026-01-01T00:00:00Z - readiness-probe - - - probe"))
		b, _ := os.ReadFile(r.udpOut)
		if !bytes.Contains(b, []byte("readiness-probe")) {
			return errors.New("no probe yet")
		}
		return nil
	})
	return r
}

// parsedLine is one message as rsyslog parsed it.
type parsedLine struct {
	version, app, msgID, sd string
	event                   map[string]any
}

func readParsed(t *testing.T, path string) []parsedLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	must(t, err)
	var out []parsedLine
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(line, "\n") {
			break // still being written
		}
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), "|", 5)
		if len(f) != 5 {
			t.Fatalf("rsyslog line %q", line)
		}
		if f[1] == "readiness-probe" {
			continue
		}
		p := parsedLine{version: f[0], app: f[1], msgID: f[2], sd: f[3]}
		if err := json.Unmarshal([]byte(strings.TrimSpace(f[4])), &p.event); err != nil {
			t.Fatalf("rsyslog MSG is not the event's JSON: %q: %v", f[4], err)
		}
		out = append(out, p)
	}
	return out
}

// TestRsyslog: a real rsyslog receives RFC 5424 messages for audit
// events over TCP (octet-counting framing) and over UDP, and parses
// them as such: version 1, the app name, the structured data with the
// event's ID, and the event's JSON as MSG.
func TestRsyslog(t *testing.T) {
	r := startRsyslog(t)
	tests := []struct {
		network, addr, out string
		n                  int
	}{
		{"tcp", r.tcpAddr, r.tcpOut, 150},
		{"udp", r.udpAddr, r.udpOut, 20},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			st, _ := openStore(t)
			appendAudit(t, st, 1, tt.n)
			// Detail with characters syslog must escape or carry as is.
			must(t, st.AppendAudit(context.Background(), auditWithDetail(`{"note":"quote \" bracket ] backslash \\ ünïcode"}`)))
			run(t, st, mustParse(t, fmt.Sprintf("syslog+%s://%s?facility=13", tt.network, tt.addr)))
			var lines []parsedLine
			poll.Until(t, 30*time.Second, fmt.Sprintf("%d messages at rsyslog", tt.n+1), func() error {
				lines = readParsed(t, tt.out)
				if len(lines) < tt.n+1 {
					return fmt.Errorf("%d lines", len(lines))
				}
				return nil
			})
			seen := map[string]bool{}
			for _, l := range lines {
				id := eventID(l.event)
				if l.version != "1" || l.app != "warren-coordinator" || l.msgID != "audit" ||
					!strings.Contains(l.sd, `[warren@32473 id="`+id+`" action="node.register"`) {
					t.Fatalf("rsyslog parsed %+v", l)
				}
				seen[id] = true
			}
			for i := 1; i <= tt.n+1; i++ {
				if !seen[AuditEventID(int64(i))] {
					t.Fatalf("event %d not at rsyslog", i)
				}
			}
			last := lines[len(lines)-1].event["warren"].(map[string]any)["detail"].(map[string]any)["note"]
			if last != "quote \" bracket ] backslash \\ ünïcode" {
				t.Fatalf("detail arrived as %q", last)
			}
		})
	}
}

func auditWithDetail(detail string) (e store.AuditEvent) {
	e.Time = time.Unix(1_800_000_000, 0)
	e.Actor, e.Action, e.Outcome, e.Detail = "system", "node.register", "ok", detail
	return e
}
