// Command derpidle holds idle clients open to a Tailscale DERP server (the
// baseline of the relay RSS benchmark in the parent directory; this
// directory is its own Go module so that Warren's go.mod never depends on
// tailscale.com).
//
// It reads commands on standard input, one per line: "dial N" opens N more
// clients, each with its own node key, and answers "ok TOTAL" once the
// server has registered every one of them (it sent ServerInfo); it exits
// when standard input ends. It must never send a packet: the clients stay
// idle, so only what an idle client costs the server is measured.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

// dialConcurrency bounds the handshakes in flight.
const dialConcurrency = 16

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: derpidle http://127.0.0.1:PORT/derp  (commands on stdin: dial N)")
		os.Exit(2)
	}
	url := os.Args[1]
	netMon := netmon.NewStatic()
	quiet := func(string, ...any) {}
	var clients []*derphttp.Client
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		if f := strings.Fields(in.Text()); len(f) == 2 && f[0] == "dial" {
			n, _ = strconv.Atoi(f[1])
		}
		if n <= 0 {
			fail(fmt.Errorf("bad command %q", in.Text()))
		}
		more, err := dialN(url, n, netMon, quiet)
		if err != nil {
			fail(err)
		}
		clients = append(clients, more...)
		fmt.Printf("ok %d\n", len(clients))
	}
	for _, c := range clients {
		c.Close()
	}
}

func dialN(url string, n int, netMon *netmon.Monitor, logf func(string, ...any)) ([]*derphttp.Client, error) {
	out := make([]*derphttp.Client, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, dialConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dialOne(url, netMon, logf)
			if err != nil {
				errs <- err
				return
			}
			out[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return out, nil
}

// dialOne connects one client and waits for the server's ServerInfo, which
// derper sends after registering the client; then a goroutine keeps
// reading (keepalives) until the client is closed.
func dialOne(url string, netMon *netmon.Monitor, logf func(string, ...any)) (*derphttp.Client, error) {
	c, err := derphttp.NewClient(key.NewNode(), url, logf, netMon)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	m, err := c.Recv()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("first message: %w", err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		c.Close()
		return nil, fmt.Errorf("first message %T, want ServerInfo", m)
	}
	go func() {
		for {
			if _, err := c.Recv(); err != nil {
				return
			}
		}
	}()
	return c, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "derpidle:", err)
	os.Exit(1)
}
