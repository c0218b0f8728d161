package netcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/stun/v3"

	"github.com/warrenmesh/warren/internal/wire"
)

// defaultSTUNPort is assumed for a STUN server listed without a port.
const defaultSTUNPort = 3478

// maxProbeBody bounds how much of a /probe response is read.
const maxProbeBody = 4 << 10

// run is the state of one Checker.Run.
type run struct {
	c     *Checker
	m     *wire.DERPMap
	start time.Time

	probes []*stunProbe // fixed before any goroutine starts

	mu      sync.Mutex
	latency map[int]regionLatency // region ID → best measurement
	httpErr map[int]string        // region ID → why the HTTP probe failed
}

// regionLatency is the best measurement of one region so far.
type regionLatency struct {
	d      time.Duration
	method Method
}

// stunReply is what HandleSTUN hands to the waiting probe.
type stunReply struct {
	mapped netip.AddrPort // invalid when err != nil
	rtt    time.Duration
	at     time.Time
	from   netip.AddrPort
	err    error
}

// stunProbe is one STUN server of one region being asked for our address.
// Its fields other than resp are written only by its own goroutine, and
// read after that goroutine has ended.
type stunProbe struct {
	region int
	server string         // as listed in the DERP map
	resp   chan stunReply // capacity 1: the first reply wins

	addr     netip.AddrPort // resolved server address
	sends    int            // requests actually written
	reply    stunReply
	answered bool
	err      error
}

// deliver hands a reply to the probe without blocking; later replies (to
// retransmissions) are dropped.
func (p *stunProbe) deliver(r stunReply) {
	select {
	case p.resp <- r:
	default:
	}
}

// execute runs all probes and waits for every goroutine it started.
func (r *run) execute(ctx context.Context) {
	var httpWG sync.WaitGroup
	defer httpWG.Wait()

	// Regions without STUN servers can only be measured over HTTP: start
	// those at once.
	for _, reg := range r.m.Regions {
		if len(reg.STUN) == 0 {
			httpWG.Go(func() { r.probeHTTP(ctx, reg) })
		}
		for _, s := range reg.STUN {
			r.probes = append(r.probes, &stunProbe{region: reg.ID, server: s, resp: make(chan stunReply, 1)})
		}
	}

	stunCtx, cancel := context.WithTimeout(ctx, r.c.cfg.Timeout/2)
	var stunWG sync.WaitGroup
	for _, p := range r.probes {
		stunWG.Go(func() { r.probeSTUN(stunCtx, p) })
	}
	stunWG.Wait()
	cancel()

	// Fall back to HTTP for regions whose STUN servers all stayed silent
	// (all of them when UDP is blocked).
	for _, reg := range r.m.Regions {
		if len(reg.STUN) == 0 || reg.URL == "" {
			continue
		}
		r.mu.Lock()
		_, measured := r.latency[reg.ID]
		r.mu.Unlock()
		if !measured {
			httpWG.Go(func() { r.probeHTTP(ctx, reg) })
		}
	}
}

// record keeps d as the region's latency if it is the best so far.
func (r *run) record(region int, d time.Duration, method Method) {
	if d <= 0 {
		d = 1 // a measurement happened; keep it distinguishable from none
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.latency[region]; !ok || d < cur.d {
		r.latency[region] = regionLatency{d: d, method: method}
	}
}

// probeSTUN sends Binding requests to one server, retransmitting with a
// fresh transaction ID after each delay in Config.Retries, until a reply
// arrives or ctx ends.
func (r *run) probeSTUN(ctx context.Context, p *stunProbe) {
	var txIDs [][stun.TransactionIDSize]byte
	defer func() { r.c.forget(txIDs) }()

	addr, err := r.resolve(ctx, p.server)
	if err != nil {
		p.err = err
		r.c.log.Debug("STUN server unresolved", "server", p.server, "err", err)
		return
	}
	p.addr = addr
	retries := r.c.cfg.Retries
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for attempt := 0; ; attempt++ {
		txID := stun.NewTransactionID()
		msg, err := stun.Build(stun.NewTransactionIDSetter(txID), stun.BindingRequest, stun.Fingerprint)
		if err != nil {
			p.err = fmt.Errorf("build STUN request: %w", err)
			return
		}
		txIDs = append(txIDs, txID)
		r.c.register(txID, p, time.Now())
		if _, err := r.c.cfg.Conn.WriteToUDPAddrPort(msg.Raw, addr); err != nil {
			p.err = fmt.Errorf("send STUN request to %s: %w", addr, err)
		} else {
			p.sends++
		}
		last := attempt >= len(retries)
		if last && p.sends == 0 {
			return // nothing went out; nothing can come back
		}
		var next <-chan time.Time
		if !last {
			timer.Reset(retries[attempt])
			next = timer.C
		}
		select {
		case rep := <-p.resp:
			p.reply, p.answered, p.err = rep, true, rep.err
			r.record(p.region, rep.rtt, MethodSTUN)
			return
		case <-next:
		case <-ctx.Done():
			if p.err == nil {
				p.err = errors.New("no STUN answer")
			}
			return
		}
	}
}

// resolve turns a DERP map STUN entry (host:port, or host alone for the
// default port) into one address: the first IPv4 address if there is one,
// else the first address.
func (r *run) resolve(ctx context.Context, server string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(server)
	port := uint64(defaultSTUNPort)
	if err != nil {
		host = strings.Trim(server, "[]")
	} else if port, err = strconv.ParseUint(portStr, 10, 16); err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("STUN server %q: bad port", server)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("STUN server %q: no host", server)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(port)), nil
	}
	ips, err := r.c.cfg.Resolver(ctx, host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve STUN server %s: %w", host, err)
	}
	var pick netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if !ip.IsValid() {
			continue
		}
		if !pick.IsValid() || (ip.Is4() && !pick.Is4()) {
			pick = ip
		}
	}
	if !pick.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("resolve STUN server %s: no addresses", host)
	}
	return netip.AddrPortFrom(pick, uint16(port)), nil
}

// probeHTTP measures a region's latency with GET URL+"/probe": twice, since
// the first request also pays for connection setup, keeping the best.
func (r *run) probeHTTP(ctx context.Context, reg wire.DERPRegion) {
	if reg.URL == "" {
		return
	}
	url := strings.TrimSuffix(reg.URL, "/") + "/probe"
	for i := range 2 {
		d, err := r.getOnce(ctx, url)
		if err != nil {
			if i == 0 {
				r.mu.Lock()
				if r.httpErr == nil {
					r.httpErr = make(map[int]string)
				}
				r.httpErr[reg.ID] = err.Error()
				r.mu.Unlock()
				r.c.log.Debug("relay probe failed", "region", reg.ID, "url", url, "err", err)
			}
			return
		}
		r.record(reg.ID, d, MethodHTTP)
	}
}

// getOnce times one GET until the response headers arrive.
func (r *run) getOnce(ctx context.Context, url string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("probe request: %w", err)
	}
	start := time.Now()
	resp, err := r.c.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	// Drain a little so the connection can be reused for the second probe.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return d, nil
}
