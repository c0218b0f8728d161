package control

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/noise"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// The environment a child process of BenchmarkConnMemory reads: it opens
// that many streaming control channels to the coordinator at the URL.
const (
	envMemURL   = "WARREN_CONNMEM_URL"
	envMemKey   = "WARREN_CONNMEM_COORD"
	envMemAuth  = "WARREN_CONNMEM_AUTH"
	envMemNodes = "WARREN_CONNMEM_NODES"
	// envMemProfile names a file for the coordinator side's heap profile,
	// written while every channel is open.
	envMemProfile = "WARREN_CONNMEM_HEAPPROFILE"
)

// noPeers lets no node reach any other: every map is the node's own, so
// what a channel costs is measured apart from the size of its map.
const noPeers = `{"acls": []}`

// BenchmarkConnMemory measures what one streaming control channel costs the
// coordinator: heap in use and goroutine stacks per channel, and goroutines
// per channel, with the nodes in a child process so that only the
// coordinator's side is counted. The nodes go through the whole set-up
// (websocket, Noise, registration with a pre-auth key, map request) and hold
// their channels open while the coordinator's memory is read.
func BenchmarkConnMemory(b *testing.B) {
	nodes := 1000
	if testing.Short() {
		nodes = 100
	}
	if s := os.Getenv(envMemNodes); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q", envMemNodes, s)
		}
		nodes = n
	}
	if os.Getenv(envMemProfile) != "" {
		// Every allocation, so the profile is exact rather than sampled.
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	// The baseline: net/http's 4 KiB buffers each way, as before they
	// were cut.
	for _, bc := range []struct {
		name   string
		buffer int
	}{{"netHTTPBuffers", -1}, {"now", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				measureConnMemory(b, Config{connBuffer: bc.buffer}, nodes)
			}
		})
	}
}

func measureConnMemory(b *testing.B, cfg Config, nodes int) {
	b.Helper()
	h := newHarness(b, cfg)
	p, err := policy.Parse([]byte(noPeers))
	if err != nil {
		b.Fatal(err)
	}
	h.engine.SetPolicy(p)
	before := memNow()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestConnMemoryNodes$", "-test.count=1")
	cmd.Env = append(os.Environ(), envMemURL+"="+h.url, envMemKey+"="+h.key.Public().String(),
		envMemAuth+"="+h.authKey, envMemNodes+"="+strconv.Itoa(nodes))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The child prints "ready" once every node has its full map, then
	// holds the channels until its stdin closes.
	ready := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
		fmt.Fprintln(os.Stderr, sc.Text()) // the child's failure
	}
	if !ready {
		_ = stdin.Close()
		_ = cmd.Wait()
		b.Fatal("the nodes' process ended before every node had its map")
	}
	after := memNow()
	if path := os.Getenv(envMemProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		_ = f.Close()
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("nodes' process: %v", err)
	}
	n := float64(nodes)
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap-B/conn")
	b.ReportMetric(float64(after.stack-before.stack)/n, "stack-B/conn")
	b.ReportMetric(float64(after.heap+after.stack-before.heap-before.stack)/n, "B/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/n, "goroutines/conn")
}

type memSample struct {
	heap, stack uint64
	goroutines  int
}

// memNow reads heap in use and goroutine stacks after a collection, so
// garbage is not counted.
func memNow() memSample {
	for range 6 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// TestConnMemoryNodes is BenchmarkConnMemory's child process; without its
// environment it is skipped.
func TestConnMemoryNodes(t *testing.T) {
	url := os.Getenv(envMemURL)
	if url == "" {
		t.Skip("the nodes' side of BenchmarkConnMemory")
	}
	coord, err := key.ParsePublic[key.ControlKind](os.Getenv(envMemKey))
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := strconv.Atoi(os.Getenv(envMemNodes))
	if err != nil {
		t.Fatal(err)
	}
	authKey := os.Getenv(envMemAuth)
	conns := make([]*noise.Conn, 0, nodes)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range nodes {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		ws, _, err := websocket.Dial(ctx, url+ControlPath, &websocket.DialOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			cancel()
			t.Fatalf("node %d: %v", i, err)
		}
		conn, err := noise.Client(ctx, noise.WebSocket(ws), noise.ClientConfig{Machine: key.NewMachine(), Coordinator: coord})
		cancel()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		conns = append(conns, conn)
		n := &node{t: t, conn: conn, peers: map[wire.NodeID]wire.Node{},
			req: wire.RegisterRequest{Version: wire.ProtocolVersion, NodeKey: key.NewNode().Public(),
				DiscoKey: key.NewDisco().Public(), Hostname: "n" + strconv.Itoa(i), OS: "linux", AuthKey: authKey}}
		n.register()
		n.send(&wire.MapRequest{Stream: true, Endpoints: addrPorts(fmt.Sprintf("192.0.2.1:%d", 1000+i%60000))})
		if m := n.nextMap(); !m.Full {
			t.Fatalf("node %d: first map not full: %+v", i, m)
		}
	}
	fmt.Println("ready")
	// Hold the channels until the benchmark has measured.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}
