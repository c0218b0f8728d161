package coordinator_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// A client that completes the Noise handshake and then sends nothing is
// cut after HandshakeTimeout, counted, and not audited.
func TestSilentAfterHandshakeIsClosed(t *testing.T) {
	s := serve(t, coordinator.Config{HandshakeTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := s.handshake(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !closedWithin(conn, wait) {
		t.Fatalf("a silent client was still connected after %v (handshake timeout 1s)", wait)
	}
	if n := s.c.Failures().Counts()["control.silent"]; n != 1 {
		t.Fatalf("%d silent clients counted, want 1", n)
	}
	events, err := s.c.Store().ListAudit(ctx, storeFilter())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if strings.HasPrefix(e.Action, "control.") || strings.HasPrefix(e.Action, "node.") {
			t.Fatalf("a silent client was audited: %+v", e)
		}
	}
}

// The set-up messages after the registration are bounded too: a node
// that registers and never asks for its map is cut.
func TestSilentAfterRegistrationIsClosed(t *testing.T) {
	s := serve(t, coordinator.Config{HandshakeTimeout: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := s.handshake(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := wire.WriteMessage(conn, &wire.RegisterRequest{Version: wire.ProtocolVersion, NodeKey: newNodeKey(),
		DiscoKey: newDiscoKey(), Hostname: "n", AuthKey: s.authKey}); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(conn, wait) {
		t.Fatal("a node that never sent its map request stayed connected")
	}
}

// An idle HTTP keep-alive connection (here after /healthz) is closed after
// the configured IdleTimeout.
func TestIdleKeepAliveIsClosed(t *testing.T) {
	s := serve(t, coordinator.Config{Limits: coordinator.ServeLimits{IdleTimeout: 200 * time.Millisecond}})
	c, err := net.DialTimeout("tcp", s.addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: warren\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %s, close %v; want a kept-alive 200", resp.Status, resp.Close)
	}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	_, err = br.ReadByte()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle keep-alive connection still open after %v (idle timeout 200ms)", wait)
	}
	if err == nil {
		t.Fatal("coordinator sent bytes on an idle connection")
	}
}

// keepAliveForTest is short, but a healthy node is only cut if it stays
// unscheduled for three whole periods: the coordinator counts unanswered
// keep-alives rather than timing silence.
const keepAliveForTest = 100 * time.Millisecond

// A healthy node that has nothing to say stays connected across many
// keep-alive periods: it answers every keep-alive. A node of this version
// that does not answer is cut once SilenceKeepAlives went unanswered; a
// version-1 node (which never answers) is not held to it.
func TestKeepAlivesKeepHealthyNodes(t *testing.T) {
	const every = keepAliveForTest
	const periods = 2 * coordinatorSilence
	s := serve(t, coordinator.Config{KeepAlive: every})
	tests := []struct {
		name    string
		version int
		answer  bool
		cut     bool
	}{
		{"answers", wire.ProtocolVersion, true, false},
		{"silent", wire.ProtocolVersion, false, true},
		{"version 1", 1, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := s.join(t, tt.version)
			timer := time.AfterFunc(wait, func() { conn.Close() })
			defer timer.Stop()
			seen := 0
			for seen < periods {
				m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
				if err != nil {
					if !tt.cut {
						t.Fatalf("cut after %d keep-alives: %v", seen, err)
					}
					if seen < coordinatorSilence {
						t.Fatalf("cut after only %d keep-alives", seen)
					}
					return
				}
				if _, ok := m.(*wire.KeepAlive); !ok {
					continue
				}
				seen++
				if tt.answer {
					if err := wire.WriteMessage(conn, &wire.KeepAlive{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.cut {
				t.Fatalf("a node that answered none of %d keep-alives is still connected", seen)
			}
		})
	}
}

// The real node client answers keep-alives: an idle node stays on one
// channel while a watcher sees many keep-alive periods go by, far longer
// than the HTTP timeouts (which upgraded websockets are exempt from).
func TestIdleNodeStaysConnected(t *testing.T) {
	const every = keepAliveForTest
	short := 3 * every // well below the time the watcher watches (2 * SilenceKeepAlives periods)
	s := serve(t, coordinator.Config{KeepAlive: every,
		Limits: coordinator.ServeLimits{IdleTimeout: short, ReadTimeout: short, WriteTimeout: short, ReadHeaderTimeout: short}})
	connected := make(chan struct{}, 1)
	cc, err := controlclient.New(controlclient.Config{URL: s.url, ControlKey: s.c.PublicKey(), Machine: key.NewMachine(),
		NodeKey: newNodeKey(), DiscoKey: newDiscoKey(), Hostname: "idle", OS: "linux", AuthKey: s.authKey,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		OnNetmap: func(*controlclient.Netmap) {
			select {
			case connected <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cc.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	select {
	case <-connected:
	case <-time.After(wait):
		t.Fatal("node did not get its netmap")
	}
	// A watcher node that answers counts the periods going by.
	watcher := s.join(t, wire.ProtocolVersion)
	for seen := 0; seen < 2*coordinatorSilence; {
		m, err := wire.ReadMessage(watcher, wire.MaxCoordinatorMessage)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.(*wire.KeepAlive); ok {
			seen++
			if err := wire.WriteMessage(watcher, &wire.KeepAlive{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := cc.Sessions(); n != 1 || !cc.Connected() {
		t.Fatalf("idle node: %d sessions, connected %v; want one channel throughout", n, cc.Connected())
	}
}

// Connections over the per-source cap are closed at once and counted;
// other sources are still served.
func TestConnectionCapPerSource(t *testing.T) {
	s := serve(t, coordinator.Config{Limits: coordinator.ServeLimits{MaxConnsPerSource: 2}})
	dialFrom := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: wait, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Two connections held open by one source, proven served.
	for range 2 {
		c := dialFrom("127.0.0.2")
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: warren\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	over := dialFrom("127.0.0.2")
	_ = over.SetReadDeadline(time.Now().Add(wait))
	if _, err := over.Read(make([]byte, 1)); err == nil {
		t.Fatal("a third connection from the same source was served")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a third connection from the same source was left open")
	}
	if err := healthy(clientFrom("127.0.0.3"), s.url); err != nil {
		t.Fatalf("another source: %v", err)
	}
	if n := s.c.Failures().Counts()["conn.refused"]; n != 1 {
		t.Fatalf("%d refused connections counted, want 1", n)
	}
}

// A node asked to sign in must send its follow-up at once (within
// HandshakeTimeout), and the wait for the sign-in itself ends with the
// login's timeout: neither holds a connection open for good.
func TestLoginFollowupIsBounded(t *testing.T) {
	tests := []struct {
		name         string
		sendFollowup bool
	}{
		{"no follow-up", false},
		{"nobody signs in", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, coordinator.Config{HandshakeTimeout: time.Second,
				Login: coordinator.LoginConfig{PublicURL: "http://127.0.0.1", Local: true, Timeout: time.Second}})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			conn, err := s.handshake(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := &wire.RegisterRequest{Version: wire.ProtocolVersion, NodeKey: newNodeKey(), DiscoKey: newDiscoKey(), Hostname: "n"}
			if err := wire.WriteMessage(conn, req); err != nil {
				t.Fatal(err)
			}
			m, err := wire.ReadMessage(conn, wire.MaxCoordinatorMessage)
			if err != nil {
				t.Fatal(err)
			}
			r, ok := m.(*wire.RegisterResponse)
			if !ok || r.AuthURL == "" {
				t.Fatalf("want a sign-in URL, got %s", describe(m))
			}
			if tt.sendFollowup {
				follow := *req
				follow.Followup = r.AuthURL
				if err := wire.WriteMessage(conn, &follow); err != nil {
					t.Fatal(err)
				}
			}
			if !closedWithin(conn, wait) {
				t.Fatalf("still connected after %v", wait)
			}
		})
	}
}
