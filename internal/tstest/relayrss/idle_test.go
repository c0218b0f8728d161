//go:build linux

package relayrss

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/internal/key"
)

// idleEnv, when set to a relay URL, makes this test binary the idle-client
// process for warren-derp (the counterpart of derperbaseline's derpidle).
const idleEnv = "WARREN_RELAYRSS_IDLE_URL"

const dialConcurrency = 16 // handshakes in flight, as derpidle

func TestMain(m *testing.M) {
	if url := os.Getenv(idleEnv); url != "" {
		if err := serveIdleClients(url, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "idle clients:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveIdleClients serves derpidle's protocol for a Warren relay: "dial N"
// opens N more clients, each with its own node key, and answers
// "ok TOTAL" once the relay admitted every one; it returns when in ends.
// The clients never send a packet.
func serveIdleClients(url string, in io.Reader, out io.Writer) error {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var clients []*derp.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		var n int
		if f := strings.Fields(lines.Text()); len(f) == 2 && f[0] == "dial" {
			n, _ = strconv.Atoi(f[1])
		}
		if n <= 0 {
			return fmt.Errorf("bad command %q", lines.Text())
		}
		more := make([]*derp.Client, n)
		errs := make(chan error, n)
		sem := make(chan struct{}, dialConcurrency)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := derp.Dial(ctx, url, key.NewNode(), derp.ClientOptions{Logger: log})
				if err != nil {
					errs <- err
					return
				}
				more[i] = c
			}()
		}
		wg.Wait()
		close(errs)
		for _, c := range more {
			if c != nil {
				clients = append(clients, c)
			}
		}
		if err := <-errs; err != nil {
			return err
		}
		fmt.Fprintf(out, "ok %d\n", len(clients))
	}
	return lines.Err()
}
