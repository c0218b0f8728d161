package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
)

// startForward runs Forward on a loopback listener and returns its address
// and a stop function that cancels it and returns Forward's result.
func startForward(t *testing.T, target string, cfg Config) (string, func() error) {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = plainDialer()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- Forward(ctx, ln, target, cfg) }()
	var once sync.Once
	var err2 error
	stop := func() error {
		once.Do(func() { cancel(); err2 = <-res })
		return err2
	}
	t.Cleanup(func() { _ = stop() })
	return ln.Addr().String(), stop
}

func TestForward(t *testing.T) {
	echo := startEcho(t, "tcp4")
	echo6 := startEcho(t, "tcp6")
	resolve := mapResolver(map[string]netip.Addr{"db": echo.Addr(), "db.warren.internal": echo6.Addr()})
	tests := []struct {
		name, target string
	}{
		{"name", "db:" + itoa(echo.Port())},
		{"fqdn", "db.warren.internal:" + itoa(echo6.Port())},
		{"ipv4 literal", echo.String()},
		{"ipv6 literal", echo6.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, stop := startForward(t, tt.target, Config{Resolve: resolve})
			var wg sync.WaitGroup
			for range 3 { // concurrent clients
				c := dialProxy(t, addr)
				wg.Go(func() { checkEcho(t, c, nil) })
			}
			wg.Wait()
			held := dialProxy(t, addr)
			if _, err := held.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(held, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			if err := stop(); err != nil {
				t.Fatalf("Forward after cancel = %v, want nil", err)
			}
			if _, err := io.ReadAll(held); err != nil && !isReset(err) {
				t.Fatalf("open client after cancel: %v", err)
			}
			if c, err := net.Dial("tcp", addr); err == nil {
				_ = c.Close()
				t.Fatal("still accepting after cancel")
			}
		})
	}
}

func TestForwardUnreachableTargetClosesClient(t *testing.T) {
	closed := closedPort(t)
	tests := []struct{ name, target string }{
		{"unknown host", "db2:5432"},
		{"refused", closed.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startForward(t, tt.target, Config{Resolve: mapResolver(nil)})
			c := dialProxy(t, addr)
			if got, err := io.ReadAll(c); len(got) != 0 || (err != nil && !isReset(err)) {
				t.Fatalf("read = %q, %v; want the client closed", got, err)
			}
		})
	}
}

func TestForwardRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name, target string
		cfg          Config
	}{
		{"no port", "db", Config{Dial: plainDialer(), Resolve: mapResolver(nil)}},
		{"bad port", "db:http", Config{Dial: plainDialer(), Resolve: mapResolver(nil)}},
		{"no dialer", "db:80", Config{Resolve: mapResolver(nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := Forward(context.Background(), ln, tt.target, tt.cfg); err == nil {
				t.Fatal("Forward succeeded; want an error")
			}
			if _, err := ln.Accept(); err == nil {
				t.Fatal("Forward left the listener open")
			}
		})
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }
