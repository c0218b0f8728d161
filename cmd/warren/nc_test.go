package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestNC runs "warren nc" on ann's laptop (userspace mode, so only the
// local API reaches the mesh) against real services that ann's db
// exposes: an echo service that answers after the client half-closes,
// and a greeter that speaks first and hangs up without reading (as an
// SSH server that refuses does).
func TestNC(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a mesh")
	}
	echo := serveTCP(t, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		_, _ = c.Write(append([]byte("echo:"), b...))
	})
	greet := serveTCP(t, func(c net.Conn) { _, _ = io.WriteString(c, "SSH-2.0-test\r\n") })

	m := testmesh.New(t, testmesh.Options{})
	ann := m.User("ann@example.com")
	key := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	db := m.AddDaemonWith("db", func(c *daemon.Config) {
		c.Expose = []daemon.Expose{{Port: 7, Target: echo}, {Port: 22, Target: greet}}
	})
	laptop := m.AddDaemon("laptop")
	for _, d := range []*testmesh.Daemon{db, laptop} {
		if _, _, err := d.Up(localapi.UpRequest{AuthKey: key}, nil); err != nil {
			t.Fatalf("%s up: %v", d.Name, err)
		}
	}
	sock := serveDaemon(t, laptop.Daemon)
	poll.UntilTrue(t, wait, "the laptop to see db", func() bool {
		st := laptop.Status(context.Background())
		return len(st.Peers) == 1 && st.Peers[0].Name == "db"
	})

	nc := func(stdin io.Reader, host string, port int) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var out, errOut bytes.Buffer
		err := run(ctx, []string{"--socket", sock, "nc", host, strconv.Itoa(port)}, stdin, &out, &errOut)
		return out.String(), errOut.String(), err
	}

	t.Run("half-close", func(t *testing.T) {
		// The first dial may meet a tunnel still being made: retry until
		// one gets through, then check what it carried.
		var out string
		poll.UntilTrue(t, wait, "nc db 7", func() bool {
			var err error
			out, _, err = nc(strings.NewReader("hello\n"), "db", 7)
			return err == nil
		})
		if out != "echo:hello\n" {
			t.Fatalf("nc db 7 printed %q; want %q", out, "echo:hello\n")
		}
	})
	t.Run("peer-closes-first", func(t *testing.T) {
		// stdin stays open: nc must still end when the peer hangs up.
		pr, pw := io.Pipe()
		defer pw.Close()
		out, _, err := nc(pr, "db.warren.internal", 22)
		if err != nil || out != "SSH-2.0-test\r\n" {
			t.Fatalf("nc db 22: %q, %v", out, err)
		}
	})
	for _, c := range []struct {
		name, host string
		port       int
		want       string
	}{
		{"nothing-listens", "db", 9, "connect to db:9"},
		{"unknown-peer", "nosuch", 22, "connect to nosuch:22"},
		{"bad-port", "db", 0, "not a port"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := nc(strings.NewReader(""), c.host, c.port)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("nc %s %d: %v; want an error containing %q", c.host, c.port, err, c.want)
			}
		})
	}
}

// serveTCP serves handle on a loopback port until the test ends and
// returns the address. handle's connection is closed when it returns.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					t.Errorf("accept: %v", err)
				}
				return
			}
			handle(c)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}
