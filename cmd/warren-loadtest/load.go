package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
)

// Config is one load run.
type Config struct {
	// URL is the coordinator's (or the load balancer's) base URL.
	URL string
	// ControlKey is the coordinator's public key; zero means fetch it
	// from URL/key.
	ControlKey key.ControlPublic
	// AuthKey is a reusable pre-auth key every simulated node registers
	// with (an ephemeral one lets the coordinator delete them afterwards).
	AuthKey string
	// NodeAuthKeys, when set, are the keys the simulated nodes register
	// with instead, node i with NodeAuthKeys[i%len]: keys of different
	// users or tags put the nodes under a policy with many users or teams
	// (AuthKey stays the probe's: make it one whose node every other node
	// may see, e.g. a tagged server's).
	NodeAuthKeys []string
	// Nodes is how many control connections to open.
	Nodes int
	// Concurrency bounds the nodes registering at once; default 64.
	Concurrency int
	// Sources spreads the connections over this many loopback source
	// addresses (127.0.0.1, 127.0.0.2, ...), so a coordinator's per-address
	// connection cap does not refuse them; 0 or 1: the system's choice.
	Sources int
	// RampTimeout bounds the whole ramp-up; ChangeTimeout the wait for
	// the change to reach every node. Defaults 10 and 1 minute.
	RampTimeout, ChangeTimeout time.Duration
	// Settle is how long no node may receive a netmap before the change
	// is made, so that the nodes' backlog from the ramp-up (each join is a
	// delta to every node) does not count in the change's latency; default
	// 2 s, bounded by RampTimeout.
	Settle time.Duration
	// Stats samples the coordinator's RSS and CPU; nil: not measured.
	Stats coordStats
	// Progress, if set, is called about every tick with the nodes mapped
	// and failed so far; Tick defaults to a second.
	Progress func(mapped, failed, total int)
	Tick     time.Duration
	Logger   *slog.Logger
}

// simNode is one simulated node: its control client and what it saw.
type simNode struct {
	client *controlclient.Client
	read   atomic.Int64 // bytes read from its connections so far
	done   chan error   // Run's result

	mapped     chan struct{} // closed with the first netmap
	mappedAt   time.Time     // written before mapped is closed
	mapBytes   int64
	mapPeers   int
	lastPeers  atomic.Int64
	sawChange  atomic.Int64 // unix nanoseconds when the probe first showed up; 0 before
	changeSeen func()       // counts sawChange's first write
}

// run is the load run: ramp up cfg.Nodes control connections, then make
// one change (an extra node joins) and time its arrival at every node. It
// returns a report even when some nodes failed (Report.OK says whether the
// run was complete); err is for runs that could not start.
func run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Nodes <= 0 {
		return nil, errors.New("--nodes must be positive")
	}
	if cfg.AuthKey == "" {
		return nil, errors.New("a pre-auth key is required (warren-coordinator keys create --user USER --reusable --ephemeral)")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.RampTimeout <= 0 {
		cfg.RampTimeout = 10 * time.Minute
	}
	if cfg.ChangeTimeout <= 0 {
		cfg.ChangeTimeout = time.Minute
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ControlKey.IsZero() {
		k, err := controlclient.FetchKey(ctx, nil, cfg.URL)
		if err != nil {
			return nil, err
		}
		cfg.ControlKey = k
	}
	runID := make([]byte, 3)
	_, _ = rand.Read(runID)
	prefix := "load-" + hex.EncodeToString(runID)

	rep := &Report{URL: cfg.URL, Nodes: cfg.Nodes, Concurrency: cfg.Concurrency}
	before := sampleStats(ctx, cfg.Stats, rep)

	// Every client runs under runCtx, ended (and waited for) on return.
	runCtx, stopAll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopAll(); wg.Wait() }()

	var probeKey atomic.Pointer[key.NodePublic]
	var lastMap atomic.Int64 // unix nanoseconds of the latest netmap at any node
	var seen atomic.Int64
	allSeen := make(chan struct{})
	var allSeenOnce sync.Once
	newNode := func(i int, hostname string) (*simNode, error) {
		n := &simNode{done: make(chan error, 1), mapped: make(chan struct{})}
		n.changeSeen = func() {
			if int(seen.Add(1)) == cfg.Nodes {
				allSeenOnce.Do(func() { close(allSeen) })
			}
		}
		nodeKey := key.NewNode().Public()
		c, err := controlclient.New(controlclient.Config{
			URL: cfg.URL, ControlKey: cfg.ControlKey, Machine: key.NewMachine(), NodeKey: nodeKey,
			DiscoKey: key.NewDisco().Public(), Hostname: hostname, OS: "linux", AuthKey: cfg.nodeAuthKey(i),
			Logger: cfg.Logger, HTTPClient: countingClient(&n.read, sourceAddr(i, cfg.Sources)),
			OnNetmap: func(nm *controlclient.Netmap) { lastMap.Store(time.Now().UnixNano()); n.onNetmap(nm, &probeKey) },
		})
		if err != nil {
			return nil, err
		}
		n.client = c
		wg.Add(1)
		go func() { defer wg.Done(); n.done <- c.Run(runCtx) }()
		return n, nil
	}

	// Ramp up: at most Concurrency nodes between start and first map.
	rampCtx, rampCancel := context.WithTimeout(ctx, cfg.RampTimeout)
	defer rampCancel()
	nodes := make([]*simNode, cfg.Nodes)
	var mapped, failed atomic.Int64
	var errMu sync.Mutex
	noteErr := func(err error) {
		failed.Add(1)
		errMu.Lock()
		if rep.FirstError == "" {
			rep.FirstError = err.Error()
		}
		errMu.Unlock()
	}
	progressDone := make(chan struct{})
	stopProgress := startProgress(cfg, &mapped, &failed, progressDone)
	start := time.Now()
	slots := make(chan struct{}, cfg.Concurrency)
	var ramp sync.WaitGroup
	for i := range nodes {
		select {
		case slots <- struct{}{}:
		case <-rampCtx.Done():
		}
		if rampCtx.Err() != nil {
			noteErr(fmt.Errorf("ramp-up: %w before node %d started", rampCtx.Err(), i))
			failed.Add(int64(len(nodes) - i - 1))
			break
		}
		n, err := newNode(i, fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			<-slots
			noteErr(err)
			continue
		}
		nodes[i] = n
		ramp.Add(1)
		go func() {
			defer ramp.Done()
			defer func() { <-slots }()
			select {
			case <-n.mapped:
				mapped.Add(1)
			case err := <-n.done:
				n.done <- err // keep it for later readers
				noteErr(fmt.Errorf("node %d: %w", i, err))
			case <-rampCtx.Done():
				noteErr(fmt.Errorf("node %d: no netmap before the ramp-up ended: %w", i, rampCtx.Err()))
			}
		}()
	}
	ramp.Wait()
	rep.RegisterSeconds = time.Since(start).Seconds()
	stopProgress()
	<-progressDone
	rep.Mapped, rep.Failed = int(mapped.Load()), int(failed.Load())
	afterRamp := sampleStats(ctx, cfg.Stats, rep)
	rep.Coordinator.RSSAfterRamp = afterRamp.RSS
	rep.Coordinator.CPURamp = cpuDelta(before, afterRamp)

	var joins []time.Duration
	var mapBytes, mapPeers []int64
	for _, n := range nodes {
		if n == nil {
			continue
		}
		select {
		case <-n.mapped:
			joins = append(joins, n.mappedAt.Sub(start))
			mapBytes = append(mapBytes, n.mapBytes)
			mapPeers = append(mapPeers, int64(n.mapPeers))
		default:
		}
	}
	rep.MappedAt = summarize(joins)
	rep.FirstMapBytes = summarizeInts(mapBytes)
	rep.FirstMapPeers = summarizeInts(mapPeers)
	if rep.Mapped < cfg.Nodes {
		rep.finish(ctx, nodes, cfg.Stats)
		return rep, nil
	}

	// Let the nodes' backlog drain: the change starts when no node got a
	// netmap for cfg.Settle.
	settleStart := time.Now()
	if !settle(rampCtx, &lastMap, cfg.Settle) {
		noteErr(fmt.Errorf("the nodes were still receiving netmaps when the ramp-up timeout ended: %w", rampCtx.Err()))
		rep.finish(ctx, nodes, cfg.Stats)
		return rep, nil
	}
	rep.SettleSeconds = time.Since(settleStart).Seconds()
	afterRamp = sampleStats(ctx, cfg.Stats, rep)
	rep.Coordinator.CPURamp = cpuDelta(before, afterRamp) // the settling included

	// The change: one more node joins; every node must see it as a peer.
	changeStart := time.Now()
	probe, err := newProbe(runCtx, cfg, &probeKey, prefix+"-probe", &wg)
	if err != nil {
		noteErr(err)
		rep.finish(ctx, nodes, cfg.Stats)
		return rep, nil
	}
	changeCtx, changeCancel := context.WithTimeout(ctx, cfg.ChangeTimeout)
	defer changeCancel()
	select {
	case <-allSeen:
	case <-changeCtx.Done():
		noteErr(fmt.Errorf("the change reached %d of %d nodes: %w", seen.Load(), cfg.Nodes, changeCtx.Err()))
	}
	// The joining node's own map may come after its peers saw it.
	select {
	case <-probe.mapped:
		rep.Change.ProbeMappedMs = ms(probe.mappedAt.Sub(changeStart))
	case <-changeCtx.Done():
		noteErr(fmt.Errorf("the joining node got no netmap: %w", changeCtx.Err()))
	}
	var lat []time.Duration
	for _, n := range nodes {
		if at := n.sawChange.Load(); at != 0 {
			lat = append(lat, time.Unix(0, at).Sub(changeStart))
		}
	}
	rep.Change.Seen = len(lat)
	rep.Change.Latency = summarize(lat)
	rep.finish(ctx, nodes, cfg.Stats)
	rep.Coordinator.CPUChange = cpuDelta(afterRamp, rep.last)
	rep.Failed = int(failed.Load())
	return rep, nil
}

// settle waits until no netmap arrived for quiet, reporting false if ctx
// ended first.
func settle(ctx context.Context, last *atomic.Int64, quiet time.Duration) bool {
	t := time.NewTicker(quiet / 4)
	defer t.Stop()
	for {
		if time.Since(time.Unix(0, last.Load())) >= quiet {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// nodeAuthKey is the pre-auth key simulated node i registers with.
func (cfg *Config) nodeAuthKey(i int) string {
	if len(cfg.NodeAuthKeys) == 0 {
		return cfg.AuthKey
	}
	return cfg.NodeAuthKeys[i%len(cfg.NodeAuthKeys)]
}

// newProbe starts the node whose joining is the measured change; it arms
// probeKey before connecting, so no node can miss it.
func newProbe(ctx context.Context, cfg Config, probeKey *atomic.Pointer[key.NodePublic], hostname string, wg *sync.WaitGroup) (*simNode, error) {
	n := &simNode{done: make(chan error, 1), mapped: make(chan struct{}), changeSeen: func() {}}
	nodeKey := key.NewNode().Public()
	probeKey.Store(&nodeKey)
	c, err := controlclient.New(controlclient.Config{
		URL: cfg.URL, ControlKey: cfg.ControlKey, Machine: key.NewMachine(), NodeKey: nodeKey,
		DiscoKey: key.NewDisco().Public(), Hostname: hostname, OS: "linux", AuthKey: cfg.AuthKey,
		Logger: cfg.Logger, HTTPClient: countingClient(&n.read, sourceAddr(cfg.Nodes, cfg.Sources)),
		OnNetmap: func(nm *controlclient.Netmap) { n.onNetmap(nm, nil) },
	})
	if err != nil {
		return nil, err
	}
	n.client = c
	wg.Add(1)
	go func() { defer wg.Done(); n.done <- c.Run(ctx) }()
	return n, nil
}

// onNetmap runs on the node's client goroutine with each new netmap.
func (n *simNode) onNetmap(nm *controlclient.Netmap, probe *atomic.Pointer[key.NodePublic]) {
	n.lastPeers.Store(int64(len(nm.Peers)))
	select {
	case <-n.mapped:
	default:
		n.mappedAt = time.Now()
		n.mapBytes = n.read.Load()
		n.mapPeers = len(nm.Peers)
		close(n.mapped)
	}
	if probe == nil || n.sawChange.Load() != 0 {
		return
	}
	pk := probe.Load()
	if pk == nil {
		return
	}
	if slices.ContainsFunc(nm.Peers, func(p wire.Node) bool { return p.NodeKey == *pk }) {
		n.sawChange.Store(time.Now().UnixNano())
		n.changeSeen()
	}
}

// finish fills in what every report has at the end: bytes and peers per
// node now, and the coordinator's last sample.
func (r *Report) finish(ctx context.Context, nodes []*simNode, stats coordStats) {
	var total, peers []int64
	for _, n := range nodes {
		if n != nil {
			total = append(total, n.read.Load())
			peers = append(peers, n.lastPeers.Load())
		}
	}
	r.BytesPerNode = summarizeInts(total)
	r.PeersPerNode = summarizeInts(peers)
	r.last = sampleStats(ctx, stats, r)
	r.Coordinator.RSSEnd = r.last.RSS
	r.Coordinator.PeakRSS = r.last.PeakRSS
	r.Coordinator.CPUTotal = r.last.CPU
	r.OK = r.Mapped == r.Nodes && r.Change.Seen == r.Nodes && r.FirstError == ""
}

// sourceAddr is the local address node i dials from: one of sources
// loopback addresses, or nil for the system's choice.
func sourceAddr(i, sources int) net.Addr {
	if sources <= 1 {
		return nil
	}
	a := netip.AddrFrom4([4]byte{127, 0, byte(1 + (i%sources)/254), byte(1 + (i%sources)%254)})
	return &net.TCPAddr{IP: a.AsSlice()}
}

// countingClient is an HTTP client whose connections add the bytes they
// read to read, dialling from local (nil: any address).
func countingClient(read *atomic.Int64, local net.Addr) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, LocalAddr: local}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c, read: read}, nil
		},
		DisableKeepAlives: true,
	}}
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}
