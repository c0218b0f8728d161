package sshtest_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/sshtest"
)

func TestUser(t *testing.T) {
	u := sshtest.User(t, "self")
	if !strings.HasPrefix(u.Username, "wtself") || len(u.Username) > 32 {
		t.Errorf("name %q: want wtself + suffix, at most 32 characters", u.Username)
	}
	if st, err := os.Stat(u.HomeDir); err != nil || !st.IsDir() {
		t.Errorf("home %s: %v", u.HomeDir, err)
	}
	if u.Uid == "0" {
		t.Errorf("uid 0 for a test user")
	}
}

// TestClientRefused runs the real ssh against a listener that hangs up at
// once: ssh fails with 255 and says why, on stderr, line by line too.
func TestClientRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	c := sshtest.Client{User: "nobody", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := c.Run(ctx, t, nil, "true")
	if res.ExitCode != 255 || res.Stderr == "" {
		t.Errorf("Run: exit %d, stderr %q; want 255 and a reason", res.ExitCode, res.Stderr)
	}
	s := c.Start(ctx, t, "true")
	var lines []string
	for l := range s.Lines() {
		lines = append(lines, l)
	}
	res, err = s.Wait()
	if err != nil || res.ExitCode != 255 || len(lines) == 0 {
		t.Errorf("Start: exit %d, %v, lines %q; want 255 and lines", res.ExitCode, err, lines)
	}
}
