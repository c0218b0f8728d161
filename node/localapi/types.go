// Package localapi is the node daemon's local API: the contract between
// warrend and the warren CLI (or any local tool), a server that serves it
// over a unix socket, and a client.
//
// The socket is the security boundary: it is created 0600 (or 0660 for a
// named group), and the server also checks the caller's uid and groups
// (SO_PEERCRED, SO_PEERGROUPS), so only root, the daemon's own user and
// members of the allowed group can steer the node or dial through it.
package localapi

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/node/netcheck"
)

// Backend is what the server exposes; the daemon implements it.
type Backend interface {
	// Up joins (or rejoins) the mesh, reporting steps to progress, and
	// returns once the node has its first netmap or fails.
	Up(ctx context.Context, req UpRequest, progress func(string)) (Status, error)
	// Down disconnects and stops the data plane, keeping the identity.
	Down(ctx context.Context) error
	// Logout disconnects and forgets the registration and node key.
	Logout(ctx context.Context) error
	Status(ctx context.Context) Status
	Ping(ctx context.Context, req PingRequest) (PingReport, error)
	Netcheck(ctx context.Context) (NetcheckReport, error)
	// Resolve maps a Warren name or mesh address to a mesh address.
	Resolve(ctx context.Context, name string) (netip.Addr, error)
	// Dial connects through the mesh to host:port (a Warren name or mesh
	// address).
	Dial(ctx context.Context, network, hostport string) (net.Conn, error)
	// Posture returns the device's own posture attributes: those the
	// node collected and reports, or a fresh collection when it is down.
	Posture(ctx context.Context) PostureReport
	// Access passes a just-in-time access call to the coordinator as
	// this node and returns its final reply; onAuthURL gets the sign-in
	// URL of a step-up first (see wire.AccessCall).
	Access(ctx context.Context, call AccessCall, onAuthURL func(url string)) (AccessReply, error)
	// WhoIs says who is behind addr, a peer's mesh address or the local
	// address of a connection warrend --expose made (IP or IP:PORT; see
	// WhoIs); an unknown one is an error wrapping ErrNotFound.
	WhoIs(ctx context.Context, addr string) (WhoIs, error)
}

// UpRequest asks the node to join a coordinator.
type UpRequest struct {
	// Coordinator is the base URL; empty means the one joined before.
	Coordinator string `json:"coordinator,omitempty"`
	// ControlKey pins the coordinator's key ("ckey:…"); empty means fetch
	// it from the coordinator's /key URL on first join.
	ControlKey string `json:"controlKey,omitempty"`
	// AuthKey is a pre-auth key; needed on first join.
	AuthKey  string   `json:"authKey,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Tags     []string `json:"tags,omitempty"`
	// Reauth makes the node authenticate again (with AuthKey, or an
	// interactive login) under a fresh node key, keeping its machine key
	// and address. An expired node re-authenticates this way by itself.
	Reauth bool `json:"reauth,omitempty"`
	// AdvertiseRoutes replaces the subnet routes the node offers (nil:
	// keep them; empty: none); AdvertiseExitNode, when set, whether it
	// offers to be an exit node. An admin or the policy's autoApprovers
	// approve them on the coordinator.
	AdvertiseRoutes   *[]netip.Prefix `json:"advertiseRoutes,omitempty"`
	AdvertiseExitNode *bool           `json:"advertiseExitNode,omitempty"`
	// ExitNode, when set, replaces the exit node the node uses: a peer's
	// name or mesh address, "" for none. The peer must be an approved
	// exit node in the netmap. ExitNodeAllowLANAccess, when set, whether
	// the node's own LAN is reached directly while it uses one.
	ExitNode               *string `json:"exitNode,omitempty"`
	ExitNodeAllowLANAccess *bool   `json:"exitNodeAllowLANAccess,omitempty"`
}

// Node states reported in Status.State.
const (
	StateStopped    = "stopped"     // down or never up
	StateStarting   = "starting"    // connecting or registering
	StateNeedsLogin = "needs-login" // waiting for the user to sign in at AuthURL
	StateRunning    = "running"     // has a netmap; tunnels up
	StateError      = "error"       // the coordinator refused the node; see Error
)

// Status is the node's state and its view of the mesh.
type Status struct {
	State string `json:"state"`
	Error string `json:"error,omitempty"`
	// AuthURL is where the user must sign in (state needs-login).
	AuthURL     string `json:"authURL,omitempty"`
	Coordinator string `json:"coordinator,omitempty"`
	// Connected is true while the control channel is up; the node keeps
	// working on its last netmap while it is down.
	Connected  bool         `json:"connected"`
	Mode       string       `json:"mode"` // "userspace" or "tun:NAME"
	Domain     string       `json:"domain,omitempty"`
	Self       *PeerStatus  `json:"self,omitempty"`
	Peers      []PeerStatus `json:"peers"`
	ListenPort uint16       `json:"listenPort,omitempty"`
	Endpoints  []string     `json:"endpoints,omitempty"`
	SOCKS5     string       `json:"socks5,omitempty"`
	HTTPProxy  string       `json:"httpProxy,omitempty"`
	// MagicDNS is TUN mode's resolver at 100.100.100.100: how the
	// system's DNS is pointed at it ("resolved", "resolv.conf",
	// "resolver-dir", "nrpt"), "off" when warrend leaves the system's DNS
	// alone (--dns off), "unconfigured" when pointing it failed (see
	// warrend's log); empty in userspace mode and before the data plane
	// is up.
	MagicDNS string `json:"magicDNS,omitempty"`
	// Dropped counts inbound packets the filter refused.
	Dropped uint64 `json:"dropped"`
	// ExitNode is the peer this node sends its non-mesh traffic through
	// (its name; empty: none), ExitNodeWanted what warren up asked for
	// (set while that peer is not an approved exit node in the netmap:
	// then non-mesh traffic goes nowhere rather than around it), and
	// ExitNodeAllowLANAccess whether the node's LAN stays direct.
	ExitNode               string `json:"exitNode,omitempty"`
	ExitNodeWanted         string `json:"exitNodeWanted,omitempty"`
	ExitNodeAllowLANAccess bool   `json:"exitNodeAllowLANAccess,omitempty"`
	// Posture is the coordinator's view of this node's posture (nil: it
	// holds no attributes and denies nothing for posture).
	Posture *PostureStatus `json:"posture,omitempty"`
	// FlowSpool is the node's spool of flow records waiting for the
	// coordinator (nil: flow logs are off on this node).
	FlowSpool *FlowSpoolStatus `json:"flowSpool,omitempty"`
}

// PeerStatus describes one node of the mesh as this node sees it.
type PeerStatus struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	DNSName   string         `json:"dnsName"`
	Hostname  string         `json:"hostname"`
	User      string         `json:"user,omitempty"`
	Tags      []string       `json:"tags,omitempty"`
	Addresses []netip.Prefix `json:"addresses"`
	Online    bool           `json:"online"`
	// Path is how packets to the peer travel: "direct IP:PORT" (proven
	// by a disco ping), "relay CODE" (through the relay region CODE),
	// "direct (unproven; no relay)" or "none".
	Path string `json:"path,omitempty"`
	// PathRTT is the direct path's last ping round trip.
	PathRTT   time.Duration    `json:"pathRttNs,omitempty"`
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	// HomeRelay is the relay region the peer is reachable at.
	HomeRelay     int       `json:"homeRelay,omitempty"`
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	RxBytes       uint64    `json:"rxBytes"`
	TxBytes       uint64    `json:"txBytes"`
	KeyExpiry     time.Time `json:"keyExpiry,omitzero"`
	// Routes are the subnet routes the peer serves (advertised and
	// approved).
	Routes []netip.Prefix `json:"routes,omitempty"`
	// PrimaryRoutes are those of Routes this node sends to the peer: it
	// is their primary router here (another router serving the same
	// prefix stands by, see docs/architecture.md).
	PrimaryRoutes []netip.Prefix `json:"primaryRoutes,omitempty"`
	// ExitNodeOption is true for a peer that is an approved exit node
	// this node may use (warren exit-node list).
	ExitNodeOption bool `json:"exitNodeOption,omitempty"`
}

// PingRequest asks for pings to a peer.
type PingRequest struct {
	Peer string `json:"peer"`
	// Count is how many probes of each kind; default 3, at most 100.
	Count int `json:"count,omitempty"`
	// TCPPort, if set, also times TCP connects to that port.
	TCPPort uint16 `json:"tcpPort,omitempty"`
}

// PingReport is the outcome of a ping.
type PingReport struct {
	Peer    string       `json:"peer"`
	Address netip.Addr   `json:"address"`
	Path    string       `json:"path"`
	Results []PingResult `json:"results"`
}

// PingResult is one probe: Kind "wireguard" (an ICMP echo through the
// tunnel, answered by the peer's stack after its filter) or "tcp" (a TCP
// connect to TCPPort).
type PingResult struct {
	Kind  string        `json:"kind"`
	Seq   int           `json:"seq"`
	RTT   time.Duration `json:"rttNs,omitempty"`
	Error string        `json:"error,omitempty"`
}

// NetcheckReport describes the node's network situation.
type NetcheckReport struct {
	ListenPort uint16   `json:"listenPort"`
	Endpoints  []string `json:"endpoints"`
	// Coordinator reachability: the round trip of fetching its key.
	Coordinator        string        `json:"coordinator,omitempty"`
	CoordinatorRTT     time.Duration `json:"coordinatorRttNs,omitempty"`
	CoordinatorError   string        `json:"coordinatorError,omitempty"`
	ControlKeyMatches  bool          `json:"controlKeyMatches"`
	ControlChannelOpen bool          `json:"controlChannelOpen"`
	// NAT summarises what is known of the NAT in front of the node.
	NAT string `json:"nat"`
	// Network is the measurement (STUN over the WireGuard socket when the
	// node runs): UDP, public endpoint, NAT mapping, region latencies.
	Network *netcheck.Report `json:"network,omitempty"`
	// NetworkError says why there is no measurement.
	NetworkError string `json:"networkError,omitempty"`
	// HomeRegion is the relay region this node is reachable at (0: none).
	HomeRegion int `json:"homeRegion"`
}

// PostureReport is the device's posture (warren posture): what the node
// collected itself, and the coordinator's view beside it.
type PostureReport struct {
	// Attrs are the node: attributes the node collected, sorted by name;
	// what it could not determine is absent.
	Attrs []PostureAttr `json:"attrs"`
	// Reporting is true when a running session reports these to the
	// coordinator; false when they were collected for this request only.
	Reporting bool `json:"reporting"`
	// Interval is how often the node collects (besides at start and on
	// network changes).
	Interval time.Duration `json:"intervalNs,omitempty"`
	// Coordinator is what the coordinator holds for the device and the
	// rules it fails only because of posture (nil: nothing, or no
	// netmap yet).
	Coordinator *PostureStatus `json:"coordinator,omitempty"`
}

// FlowSpoolStatus is the state of the node's flow record spool.
type FlowSpoolStatus struct {
	Bytes   int64  `json:"bytes"`   // on disk
	Max     int64  `json:"max"`     // the bound
	Pending uint64 `json:"pending"` // records not yet acknowledged by the coordinator
	Dropped uint64 `json:"dropped"` // records dropped (oldest first) because the spool was full, since warrend started
}
