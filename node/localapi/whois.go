package localapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// WhoIs answers GET /v0/whois?addr=IP[:PORT]: who is behind a connection
// arriving on this node. addr is either a peer's mesh address (with PORT,
// the node's own port the connection came to: the answer then names the
// policy rule that let it in), or the address and port a service on this
// host sees as its client's when the connection came through
// warrend --expose (127.0.0.1:PORT: the node's own connection to the
// service, made for a mesh client). An unknown address answers 404.
//
// Any program on the host may call it over the local API's socket, e.g.
//
//	curl --unix-socket /run/warren/warrend.sock 'http://local/v0/whois?addr=127.0.0.1:51234'
type WhoIs struct {
	// Address is what was asked about, as given.
	Address string `json:"address"`
	// MeshSource is the mesh client's address and port, for a connection
	// that came through --expose (or the peer's address asked about).
	MeshSource netip.AddrPort `json:"meshSource,omitzero"`
	// Self is true when the address is this node's own.
	Self bool `json:"self,omitempty"`
	// User is the owner's login and UserName the display name; empty for
	// a tagged node.
	User     string `json:"user,omitempty"`
	UserName string `json:"userName,omitempty"`
	// Node is the device.
	Node WhoIsNode `json:"node"`
	// Tags are the node's tags (a tagged node is owned by them), Groups
	// the owner's groups as the policy sees them, Postures the names of
	// the policy's postures the node passes now.
	Tags     []string `json:"tags,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	Postures []string `json:"postures,omitempty"`
	// Port is this node's port the connection came to (0: none asked).
	Port uint16 `json:"port,omitempty"`
	// Rule is the policy rule ("acls[3]", "grants[0]") that lets the node
	// connect to Port over TCP; empty when none asked, or none does.
	Rule string `json:"rule,omitempty"`
	// Via is how the connection arrived: "mesh", or for --expose
	// "expose PORT MODE" (MODE tcp, proxy-protocol or http-identity).
	Via string `json:"via"`
}

// WhoIsNode is the device part of a WhoIs answer.
type WhoIsNode struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	DNSName   string         `json:"dnsName"`
	Hostname  string         `json:"hostname"`
	Addresses []netip.Prefix `json:"addresses"`
	Online    bool           `json:"online"`
	KeyExpiry time.Time      `json:"keyExpiry,omitzero"`
}

// ErrNotFound is wrapped by a Backend's WhoIs for an address it knows no
// node for; the server answers 404 and the client returns an error
// wrapping it.
var ErrNotFound = errors.New("not found")

// ErrBadRequest is wrapped by a Backend for malformed input; the server
// answers 400.
var ErrBadRequest = errors.New("bad request")

func (s *Server) whois(w http.ResponseWriter, r *http.Request) {
	rep, err := s.cfg.Backend.WhoIs(r.Context(), r.URL.Query().Get("addr"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err)
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, err)
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err)
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// WhoIs asks who is behind addr (IP or IP:PORT, see WhoIs). An address
// the node knows nothing of returns an error wrapping ErrNotFound.
func (c *Client) WhoIs(ctx context.Context, addr string) (WhoIs, error) {
	rep, err := call[WhoIs](ctx, c, http.MethodGet, "/v0/whois?addr="+url.QueryEscape(addr), nil)
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return rep, errors.Join(ErrNotFound, err)
	}
	return rep, err
}
