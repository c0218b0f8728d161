package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSTUNListenAddr(t *testing.T) {
	loop4 := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}
	loop6 := &net.TCPAddr{IP: net.IPv6loopback, Port: 8080}
	all := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}
	for _, tc := range []struct {
		flag string
		ln   net.Addr
		want string
	}{
		{":3478", loop4, "127.0.0.1:3478"},
		{":3478", loop6, "[::1]:3478"},
		{":3478", all, ":3478"},
		{":3478", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 8080}, "192.0.2.7:3478"},
		{"[::]:3478", loop4, "[::]:3478"}, // told otherwise
		{"0.0.0.0:3478", loop4, "0.0.0.0:3478"},
		{"192.0.2.9:3478", loop4, "192.0.2.9:3478"},
		{"", loop4, ""}, // no STUN server
	} {
		if got := stunListenAddr(tc.flag, tc.ln); got != tc.want {
			t.Errorf("stunListenAddr(%q, %v) = %q, want %q", tc.flag, tc.ln, got, tc.want)
		}
	}
}

// TestServeSTUNOnLoopback: serve listening on loopback puts its STUN server
// on loopback too, not on every interface.
func TestServeSTUNOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		name, stun string
		loopback   bool
	}{
		{"default host", ":0", true},
		{"told otherwise", "0.0.0.0:0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := serveSTUNHost(t, tc.stun)
			if ip := net.ParseIP(got); ip == nil || ip.IsLoopback() != tc.loopback || (!tc.loopback && !ip.IsUnspecified()) {
				t.Fatalf("STUN listens on %s, want loopback %v", got, tc.loopback)
			}
		})
	}
}

// serveSTUNHost runs serve on 127.0.0.1 with --stun-listen stun until it
// has printed its addresses, and returns the host of the STUN address.
func serveSTUNHost(t *testing.T, stun string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--stun-listen", stun}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		go func() { _, _ = io.Copy(io.Discard, pr) }() // drain until serve returns
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	host := ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if addr, ok := strings.CutPrefix(line, "STUN:"); ok {
			h, _, err := net.SplitHostPort(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(addr), "udp")))
			if err != nil {
				t.Fatalf("STUN line %q: %v", line, err)
			}
			host = h
		}
		if strings.HasPrefix(line, "admin socket:") {
			return host
		}
	}
	t.Fatalf("serve ended before printing its addresses: %v", sc.Err())
	return ""
}

// TestServeLogSinkFlags: serve refuses a bad --log-sink or --log-sinks
// file before it starts, saying which flag is wrong.
func TestServeLogSinkFlags(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "sinks.hujson")
	if err := os.WriteFile(bad, []byte(`{"sinks": [{"url": "syslog+tcp://no-port"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--log-sink", "ftp://siem.example.com/x"}, "--log-sink: log sink"},
		{[]string{"--log-sink", "https://siem.example.com/hook?format=xml"}, "format"},
		{[]string{"--log-sinks", bad}, "sinks[0]"},
		{[]string{"--log-sinks", bad + ".missing"}, "--log-sinks"},
	}
	for _, tt := range tests {
		args := append([]string{"--state-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--stun-listen", ""}, tt.args...)
		err := serve(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("serve %v: %v; want an error saying %q", tt.args, err, tt.want)
		}
	}
}
