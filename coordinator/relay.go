package coordinator

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/warrenmesh/warren/derp"
	"github.com/warrenmesh/warren/derp/stunserver"
	"github.com/warrenmesh/warren/internal/key"
	"github.com/warrenmesh/warren/internal/wire"
)

// Defaults of the embedded relay region.
const (
	DefaultRelayRegionID   = 900
	DefaultRelayRegionCode = "warren"
	// RelayPath is where the embedded relay is served on the public
	// listener; RelayAdmitPath is where standalone relays ask whether a
	// node key is admitted.
	RelayPath      = "/derp"
	RelayAdmitPath = "/api/v1/relay/admit"
	// embeddedRevalidate is how often the embedded relay re-checks its
	// clients: the backstop behind revocations, which the engine pushes
	// to it the moment a node stops being active.
	embeddedRevalidate = 30 * time.Second
)

// RelayConfig configures the relay the coordinator embeds (a one-binary
// install) and the DERP map it gives nodes.
type RelayConfig struct {
	// Disable turns the embedded relay off; nodes then use Regions only.
	Disable bool
	// URL is the embedded relay as nodes reach it, e.g.
	// https://coord.example.com/derp. Without it the embedded region is
	// not in the DERP map (the relay still serves, for Regions that point
	// at it).
	URL string
	// STUN lists host:port addresses nodes send STUN to in the embedded
	// region; STUNListen is the UDP address the coordinator's STUN server
	// listens on ("" runs none).
	STUN       []string
	STUNListen string
	// RegionID and RegionCode name the embedded region (defaults 900,
	// "warren").
	RegionID   int
	RegionCode string
	// Regions are further regions (standalone warren-derp servers).
	Regions []wire.DERPRegion
	// AdmitToken authenticates standalone relays at RelayAdmitPath; empty
	// disables that endpoint.
	AdmitToken string
}

// derpMap builds the map nodes get: the embedded region first, then the
// configured ones. It returns nil when there is no region at all.
func (rc RelayConfig) derpMap() (*wire.DERPMap, error) {
	m := &wire.DERPMap{}
	if !rc.Disable && rc.URL != "" {
		id, code := rc.RegionID, rc.RegionCode
		if id == 0 {
			id = DefaultRelayRegionID
		}
		if code == "" {
			code = DefaultRelayRegionCode
		}
		m.Regions = append(m.Regions, wire.DERPRegion{ID: id, Code: code, Name: "embedded in the coordinator",
			URL: rc.URL, STUN: rc.STUN})
	}
	m.Regions = append(m.Regions, rc.Regions...)
	seen := map[int]bool{}
	for _, r := range m.Regions {
		if r.ID <= 0 || seen[r.ID] {
			return nil, fmt.Errorf("relay region %q: region IDs must be positive and unique (got %d)", r.Code, r.ID)
		}
		if !strings.HasPrefix(r.URL, "http://") && !strings.HasPrefix(r.URL, "https://") {
			return nil, fmt.Errorf("relay region %q: URL %q must start with http:// or https://", r.Code, r.URL)
		}
		seen[r.ID] = true
	}
	if len(m.Regions) == 0 {
		return nil, nil
	}
	return m, nil
}

// listenSTUN opens the embedded STUN server's socket, so that the DERP
// map can name its real port; when RelayConfig.STUN is empty the map
// advertises the relay URL's host with that port.
func (c *Coordinator) listenSTUN() error {
	rc := &c.cfg.Relay
	if rc.Disable || rc.STUNListen == "" {
		return nil
	}
	pc, err := net.ListenPacket("udp", rc.STUNListen)
	if err != nil {
		return fmt.Errorf("STUN server: listen %s: %w", rc.STUNListen, err)
	}
	c.stun = pc
	if len(rc.STUN) == 0 && rc.URL != "" {
		u, err := url.Parse(rc.URL)
		if err != nil {
			return fmt.Errorf("relay URL %q: %w", rc.URL, err)
		}
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		rc.STUN = []string{net.JoinHostPort(u.Hostname(), port)}
	}
	return nil
}

// startRelay creates the embedded relay and runs the STUN server.
func (c *Coordinator) startRelay(ctx context.Context) error {
	if c.cfg.Relay.Disable {
		return nil
	}
	srv, err := derp.NewServer(derp.ServerConfig{
		Admit:           c.registry.AdmitRelay,
		RevalidateEvery: embeddedRevalidate,
		Logger:          c.log.With("part", "relay"),
	})
	if err != nil {
		return fmt.Errorf("embedded relay: %w", err)
	}
	c.relay = srv
	c.revoked.setRelay(srv)
	if c.stun == nil {
		return nil
	}
	pc := c.stun
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := stunserver.Serve(ctx, pc, c.log.With("part", "stun")); err != nil && !errors.Is(err, net.ErrClosed) {
			c.log.Error("STUN server stopped", "err", err)
		}
	}()
	return nil
}

// STUNAddr returns the embedded STUN server's address, or nil.
func (c *Coordinator) STUNAddr() net.Addr {
	if c.stun == nil {
		return nil
	}
	return c.stun.LocalAddr()
}

// Relay returns the embedded relay, or nil (for tests and embedding).
func (c *Coordinator) Relay() *derp.Server { return c.relay }

// relayClients is the number of clients connected to the embedded relay
// now (false: there is none), for the console's overview.
func (c *Coordinator) relayClients() (int, bool) {
	if c.relay == nil {
		return 0, false
	}
	return c.relay.Stats().Clients, true
}

// DERPMap returns the map nodes get.
func (c *Coordinator) DERPMap() *wire.DERPMap { return c.derpMap }

// serveRelayAdmit answers a standalone relay's question: may this node
// key use the relay? The relay authenticates with the admit token.
func (c *Coordinator) serveRelayAdmit(w http.ResponseWriter, r *http.Request) {
	if !c.relayAuthorized(w, r) {
		return
	}
	k, err := key.ParsePublic[key.NodeKind](r.URL.Query().Get("key"))
	if err != nil {
		http.Error(w, "key: want a node key (nodekey:…)", http.StatusBadRequest)
		return
	}
	ok, err := c.registry.AdmitRelay(r.Context(), k)
	if err != nil {
		c.log.Error("relay admission", "err", err)
		http.Error(w, "admission check failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Admitted bool `json:"admitted"`
	}{ok})
}

// checkBearer reports whether r carries "Authorization: Bearer token",
// answering 401 itself when it does not.
func checkBearer(w http.ResponseWriter, r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
		http.Error(w, "relay admission needs the relay token (Authorization: Bearer …)", http.StatusUnauthorized)
		return false
	}
	return true
}
