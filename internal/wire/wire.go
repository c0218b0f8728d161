// Package wire defines the versioned messages of Warren's control protocol
// (node <-> coordinator) and the frame codec that carries them inside the
// Noise-encrypted control channel.
//
// A frame is: one byte frame version, one byte message type, a 4-byte
// big-endian payload length, then the payload (a JSON object). Decoders
// enforce a maximum payload size chosen by the reader, so a hostile peer
// cannot make the other side allocate more than it allows. This package does
// no I/O of its own beyond the io.Reader/io.Writer it is handed and must
// never trust a length or field it has not checked.
package wire

import (
	"encoding/json"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// ProtocolVersion is the control protocol version this build speaks. A node
// sends it in RegisterRequest; the coordinator refuses versions it does not
// support with a clear error.
//
// Version 2: the node answers every KeepAlive with a KeepAlive, and the
// coordinator closes a streaming channel from a version-2 node that left
// three keep-alives in a row unanswered (version-1 nodes never answer, so
// they are not held to it). Upgrade the coordinator before the nodes.
//
// Version 3: the node applies MapResponse.FilterDelta, so a change to a
// rule's sources costs the change, not the whole filter.
const ProtocolVersion = 3

// KeepAliveAnswerVersion is the first node version that answers keep-alives.
const KeepAliveAnswerVersion = 2

// MinProtocolVersion is the oldest node protocol version the coordinator
// accepts.
const MinProtocolVersion = 1

// NodeID is the coordinator's stable identifier of a node.
type NodeID int64

// Type identifies the message carried in a frame.
type Type byte

// Message types. Values are part of the protocol: never renumber.
const (
	TypeRegisterRequest  Type = 1  // node -> coordinator
	TypeRegisterResponse Type = 2  // coordinator -> node
	TypeMapRequest       Type = 3  // node -> coordinator
	TypeMapResponse      Type = 4  // coordinator -> node
	TypeUpdateRequest    Type = 5  // node -> coordinator
	TypeError            Type = 6  // either way, then close
	TypeKeepAlive        Type = 7  // coordinator -> node, and the node's answer
	TypeLogoutRequest    Type = 8  // node -> coordinator
	TypeFlowBatch        Type = 9  // node -> coordinator
	TypeFlowAck          Type = 10 // coordinator -> node
	TypeAccessCall       Type = 11 // node -> coordinator
	TypeAccessReply      Type = 12 // coordinator -> node
	TypeSSHCall          Type = 13 // node -> coordinator
	TypeSSHReply         Type = 14 // coordinator -> node
)

// String names the type for logs and errors.
func (t Type) String() string {
	switch t {
	case TypeRegisterRequest:
		return "RegisterRequest"
	case TypeRegisterResponse:
		return "RegisterResponse"
	case TypeMapRequest:
		return "MapRequest"
	case TypeMapResponse:
		return "MapResponse"
	case TypeUpdateRequest:
		return "UpdateRequest"
	case TypeError:
		return "Error"
	case TypeKeepAlive:
		return "KeepAlive"
	case TypeLogoutRequest:
		return "LogoutRequest"
	case TypeFlowBatch:
		return "FlowBatch"
	case TypeFlowAck:
		return "FlowAck"
	case TypeAccessCall:
		return "AccessCall"
	case TypeAccessReply:
		return "AccessReply"
	case TypeSSHCall:
		return "SSHCall"
	case TypeSSHReply:
		return "SSHReply"
	}
	return "Unknown"
}

// Message is implemented by every control-protocol message.
type Message interface {
	WireType() Type
}

// RegisterRequest asks the coordinator to bind the channel's machine key and
// the given node key to a user or tags. It is the first message a node sends.
type RegisterRequest struct {
	Version  int             `json:"version"`
	NodeKey  key.NodePublic  `json:"nodeKey"`
	DiscoKey key.DiscoPublic `json:"discoKey"`
	Hostname string          `json:"hostname"`
	OS       string          `json:"os,omitempty"`
	// AuthKey is a pre-auth key; empty means interactive login.
	AuthKey string `json:"authKey,omitempty"`
	// Tags the node asks for; the pre-auth key or the login decides.
	Tags []string `json:"tags,omitempty"`
	// Followup is the login URL of an earlier response: the node is waiting
	// for the user to finish signing in.
	Followup string `json:"followup,omitempty"`
}

// RegisterResponse answers a RegisterRequest.
type RegisterResponse struct {
	// AuthURL, when set, means the user must sign in there; the node resends
	// its request with Followup set to wait for the outcome.
	AuthURL string `json:"authURL,omitempty"`
	// Self describes the registered node once it is authorized.
	Self *Node `json:"self,omitempty"`
	// Authorized reports whether the node may join the mesh now.
	Authorized bool `json:"authorized"`
}

// MapRequest asks for the netmap. With Stream set the coordinator sends the
// full map and then deltas until the channel closes.
type MapRequest struct {
	Stream    bool             `json:"stream"`
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	HomeRelay int              `json:"homeRelay,omitempty"`
	// AdvertiseRoutes is every subnet route the node offers to forward
	// to, with 0.0.0.0/0 and ::/0 when it offers to be an exit node;
	// none withdraws what it advertised before. The coordinator serves a
	// route only once it is approved.
	AdvertiseRoutes []netip.Prefix `json:"advertiseRoutes,omitempty"`
	// Posture is the node's latest posture report (nil: none yet).
	Posture *PostureReport `json:"posture,omitempty"`
}

// UpdateRequest tells the coordinator what changed on the node. Its
// Endpoints and HomeRelay are always the node's current ones (none is
// none), also in an update sent only for the posture.
type UpdateRequest struct {
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	HomeRelay int              `json:"homeRelay,omitempty"`
	// Posture, when set, is a new posture report or a heartbeat. An
	// update with Posture and neither Endpoints nor HomeRelay leaves the
	// node's endpoints as they were (nodes send posture on its own).
	Posture *PostureReport `json:"posture,omitempty"`
}

// PostureReport is what a node found out about itself. A report with
// attributes replaces every node: attribute the coordinator held for the
// node (a name left out is no longer known); a heartbeat (Unchanged, no
// attributes) says the node collected again and nothing changed. Nodes
// report node: attributes only, never custom: ones.
type PostureReport struct {
	// Attrs maps attribute names ("node:os") to their values; what the
	// node could not determine is absent, never guessed.
	Attrs map[string]PostureValue `json:"attrs,omitempty"`
	// Unchanged marks a heartbeat.
	Unchanged bool `json:"unchanged,omitempty"`
}

// PostureValue is one attribute value and when the node collected it.
type PostureValue struct {
	Value       string    `json:"value"`
	CollectedAt time.Time `json:"collectedAt"`
}

// PostureStatus is the coordinator's view of a node's posture, sent to the
// node itself so it can tell its user why access is denied: the
// attributes held for it and the rules it fails only because of posture.
type PostureStatus struct {
	Attrs   []PostureAttr   `json:"attrs,omitempty"`
	Denials []PostureDenial `json:"denials,omitempty"`
	// MFA lists the rules the node fails only because its user's MFA is
	// stale (step-up: signing in again would let them pass).
	MFA []MFADenial `json:"mfa,omitempty"`
}

// PostureAttr is one attribute as the coordinator holds it.
type PostureAttr struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Source is "node" for what the node reported, otherwise the actor
	// that set it ("admin alice@example.com", "integration mdm-sync").
	Source      string    `json:"source"`
	CollectedAt time.Time `json:"collectedAt,omitzero"`
	// Expires is when a set attribute stops counting (zero: never).
	Expires time.Time `json:"expires,omitzero"`
	// Stale is true when the node's report is older than the
	// coordinator's maximum age: the attribute counts as absent.
	Stale bool `json:"stale,omitempty"`
}

// PostureDenial is a rule the node fails only because of posture, in
// plain words for its user.
type PostureDenial struct {
	// Destination is what the rule would let the node reach, as the
	// policy writes it ("tag:db:5432").
	Destination string `json:"destination"`
	// Posture names the posture the rule requires ("posture:managed").
	Posture string `json:"posture"`
	// Reason is the failing condition ("node:diskEncrypted is false").
	Reason string `json:"reason"`
}

// MapResponse is a full netmap (Full set) or a delta against the previous
// response on the same stream. Versions increase by one per response to a
// node and never go back for that node, even across reconnects.
type MapResponse struct {
	Version uint64 `json:"version"`
	Full    bool   `json:"full,omitempty"`
	// Self is this node, when it changed (always in a full map).
	Self *Node `json:"self,omitempty"`
	// Peers is the complete peer list (full maps only).
	Peers []Node `json:"peers,omitempty"`
	// PeersChanged holds added or changed peers, complete records.
	PeersChanged []Node `json:"peersChanged,omitempty"`
	// PeersRemoved lists peers the node must forget.
	PeersRemoved []NodeID `json:"peersRemoved,omitempty"`
	// PeersPatched holds small changes to peers already known.
	PeersPatched []PeerPatch `json:"peersPatched,omitempty"`
	// PacketFilter, when non-nil, replaces the node's inbound filter.
	PacketFilter []FilterRule `json:"packetFilter,omitempty"`
	// FilterSet reports that PacketFilter is present (it may be empty: deny
	// all).
	FilterSet bool `json:"filterSet,omitempty"`
	// FilterDelta, never with FilterSet, patches the node's current
	// filter rule by rule (ApplyFilterDelta). Only nodes of
	// FilterDeltaVersion or later get it.
	FilterDelta []FilterRuleDelta `json:"filterDelta,omitempty"`
	// Domain is the mesh DNS domain (full maps).
	Domain string `json:"domain,omitempty"`
	// DNS is the coordinator's additions to the nodes' resolvers (full
	// maps; absent when it has none).
	DNS *DNSConfig `json:"dns,omitempty"`
	// DERPMap lists the relay regions (full maps, and deltas when it
	// changes).
	DERPMap *DERPMap `json:"derpMap,omitempty"`
	// Posture is the node's posture as the coordinator sees it (full
	// maps, and deltas when it changes).
	Posture *PostureStatus `json:"posture,omitempty"`
	// SSH is the ssh rules that let peers log in to this node (full maps,
	// and deltas when it changes; in a delta, nil means unchanged and an
	// empty policy admits nobody). Nodes that predate it ignore it.
	SSH *SSHPolicy `json:"ssh,omitempty"`
}

// DNSConfig is what the coordinator adds to the names a node's resolver
// (MagicDNS, kernel TUN mode) knows beside the peers.
type DNSConfig struct {
	// Records are extra names, full names (lower case, no trailing dot)
	// answered with their addresses.
	Records []DNSRecord `json:"records,omitempty"`
	// Routes send the names under a domain to resolvers reached through
	// the mesh (split DNS).
	Routes []DNSRoute `json:"routes,omitempty"`
}

// DNSRecord is an extra name and its addresses.
type DNSRecord struct {
	Name  string       `json:"name"`
	Addrs []netip.Addr `json:"addrs"`
}

// DNSRoute sends the names under Domain to Resolvers.
type DNSRoute struct {
	Domain    string           `json:"domain"`
	Resolvers []netip.AddrPort `json:"resolvers"`
}

// DERPMap lists the relay regions a node may use. Each node picks the one
// with the lowest latency as its home and is reachable there.
type DERPMap struct {
	Regions []DERPRegion `json:"regions"`
}

// DERPRegion is one relay region: a DERP server over websocket and the
// STUN servers that answer beside it.
type DERPRegion struct {
	// ID is the region's number (> 0), what Node.HomeRelay refers to.
	ID   int    `json:"id"`
	Code string `json:"code"` // short name, e.g. "fra"
	Name string `json:"name,omitempty"`
	// URL is the relay's HTTP(S) URL, e.g. https://relay.example.com/derp;
	// clients upgrade it to a websocket, and GET URL+"/probe" measures
	// latency when UDP is blocked.
	URL string `json:"url"`
	// STUN lists host:port addresses of STUN servers in the region.
	STUN []string `json:"stun,omitempty"`
}

// Region returns the region with the given ID, or nil.
func (m *DERPMap) Region(id int) *DERPRegion {
	if m == nil {
		return nil
	}
	for i := range m.Regions {
		if m.Regions[i].ID == id {
			return &m.Regions[i]
		}
	}
	return nil
}

// Node is one node as the netmap describes it.
type Node struct {
	ID       NodeID `json:"id"`
	Name     string `json:"name"` // unique DNS label
	Hostname string `json:"hostname"`
	User     string `json:"user,omitempty"` // owner's login; empty for tagged nodes
	// UserName is the owner's display name (empty for tagged nodes, or
	// when the identity provider gave none).
	UserName string `json:"userName,omitempty"`
	// Groups are the owner's groups as the policy sees them (empty for
	// tagged nodes), sorted.
	Groups []string `json:"groups,omitempty"`
	// Postures names the policy's postures the node passes now
	// ("posture:managed"), sorted: the summary whois shows.
	Postures  []string         `json:"postures,omitempty"`
	Tags      []string         `json:"tags,omitempty"`
	NodeKey   key.NodePublic   `json:"nodeKey"`
	DiscoKey  key.DiscoPublic  `json:"discoKey"`
	Addresses []netip.Prefix   `json:"addresses"`
	Endpoints []netip.AddrPort `json:"endpoints,omitempty"`
	HomeRelay int              `json:"homeRelay,omitempty"`
	Online    bool             `json:"online"`
	LastSeen  time.Time        `json:"lastSeen,omitzero"`
	KeyExpiry time.Time        `json:"keyExpiry,omitzero"`
	Expired   bool             `json:"expired,omitempty"`
	// Routes are the subnet routes (and 0.0.0.0/0 with ::/0 for an exit
	// node) the node serves: advertised by it and approved. Peers send
	// traffic for them through it; nodes that predate it ignore it.
	Routes []netip.Prefix `json:"routes,omitempty"`
	// CapMap holds the node's own attributes and application
	// capabilities from the policy's nodeAttrs: each attribute is a key
	// with no values, each capability a key with its JSON values, carried
	// as written (unknown ones too). It is set only on the node's own
	// entry (Self), never on peers. Nodes that predate it ignore it.
	CapMap map[string][]json.RawMessage `json:"capMap,omitempty"`
}

// PeerPatch is a small change to a known peer; nil fields are unchanged.
type PeerPatch struct {
	ID        NodeID            `json:"id"`
	Endpoints *[]netip.AddrPort `json:"endpoints,omitempty"`
	HomeRelay *int              `json:"homeRelay,omitempty"`
	Online    *bool             `json:"online,omitempty"`
	LastSeen  *time.Time        `json:"lastSeen,omitempty"`
}

// FilterRule accepts inbound packets from any of SrcPrefixes to any of
// DstPorts over any of Protocols (IANA numbers; empty means TCP, UDP and
// ICMP). Anything no rule accepts is dropped.
//
// A rule with CapGrant set (and no DstPorts) is a capability rule, as in
// Tailscale's tailcfg.FilterRule: it tells the node which application
// capabilities the sources have on its addresses, and allows no packet.
// Nodes that predate CapGrant see a rule with no destinations, which
// allows nothing either.
type FilterRule struct {
	SrcPrefixes []netip.Prefix `json:"src"`
	DstPorts    []PortRange    `json:"dst"`
	Protocols   []int          `json:"proto,omitempty"`
	CapGrant    []CapGrant     `json:"capGrant,omitempty"`
	// Rule identifies the policy rule or grant the filter rule came from
	// ("acls[3]", "grants[0]"), for flow logs; empty when unknown.
	Rule string `json:"rule,omitempty"`
}

// CapGrant gives a rule's sources the capabilities in CapMap (name ->
// JSON values, carried as the policy wrote them, unknown names too) on
// the node's addresses in Dsts.
type CapGrant struct {
	Dsts   []netip.Prefix               `json:"dsts"`
	CapMap map[string][]json.RawMessage `json:"capMap"`
}

// PortRange is an inclusive range of ports on the given destination prefix.
type PortRange struct {
	Prefix netip.Prefix `json:"prefix"`
	First  uint16       `json:"first"`
	Last   uint16       `json:"last"`
}

// Error is sent before a side closes the channel on purpose.
type Error struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
}

// ErrorCode classifies an Error so a node can decide what to do next.
type ErrorCode string

// Error codes.
const (
	CodeBadRequest   ErrorCode = "bad_request"    // malformed or unexpected message
	CodeUnauthorized ErrorCode = "unauthorized"   // key unknown, used, expired, revoked
	CodeVersion      ErrorCode = "version"        // protocol version not supported
	CodeNodeRemoved  ErrorCode = "node_removed"   // the node was deleted by an admin
	CodeInternal     ErrorCode = "internal_error" // the coordinator failed; retry later
	CodeBusy         ErrorCode = "busy"           // too many requests of this kind now (sign-ins); retry later
	CodeLoggedOut    ErrorCode = "logged_out"     // the node asked to log out; it is expired
)

// KeepAlive carries nothing; it proves the channel is alive.
type KeepAlive struct{}

// AttrFlowLogsOff is the node attribute (a key of the node's own CapMap,
// from the policy's "flowLogs": false or a nodeAttrs entry) that tells the
// node not to record flow logs.
const AttrFlowLogsOff = "warren:flow-logs-off"

// FlowBatch carries flow records from the node that enforced them (the
// destination, or the router for routed traffic) to the coordinator. The
// node keeps a batch (in its spool) until a FlowAck with its Seq arrives;
// the coordinator acknowledges only once the batch is durable, so a batch
// may arrive twice and records are deduplicated by ID.
type FlowBatch struct {
	// Seq numbers the node's batches; it only grows, across restarts.
	Seq     uint64       `json:"seq"`
	Records []FlowRecord `json:"records"`
	// Dropped counts records the node's full spool dropped (oldest first)
	// since the last batch it sent.
	Dropped uint64 `json:"dropped,omitempty"`
}

// FlowAck acknowledges every batch up to and including Seq.
type FlowAck struct {
	Seq uint64 `json:"seq"`
}

// FlowRecord is one flow as the enforcing node saw it: a connection or UDP
// exchange that was accepted (possibly an update of a long flow), or an
// aggregate of denied packets (one record per source, destination, port
// and minute, with Count).
type FlowRecord struct {
	// ID is stable and unique (the node's ID, a per-node boot or epoch
	// number and a sequence, e.g. "12-3f9a-000042"): a record delivered
	// twice has the same ID.
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	// End is the last packet seen (for an update: so far).
	End time.Time `json:"end"`
	// Update marks a periodic update of a flow still open; the final
	// record has Update false.
	Update bool `json:"update,omitempty"`
	// Src is the flow's source (the peer), Dst the destination address
	// on this node or behind it (routed, exit).
	Src netip.AddrPort `json:"src"`
	Dst netip.AddrPort `json:"dst"`
	// SrcNode is the peer the source address belongs to (0: unknown).
	SrcNode NodeID `json:"srcNode,omitempty"`
	// Proto is the IANA protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
	Proto uint8 `json:"proto"`
	// Packets and bytes from the source (In) and back to it (Out).
	PacketsIn  uint64 `json:"packetsIn,omitempty"`
	BytesIn    uint64 `json:"bytesIn,omitempty"`
	PacketsOut uint64 `json:"packetsOut,omitempty"`
	BytesOut   uint64 `json:"bytesOut,omitempty"`
	// Verdict is "accept" or "deny".
	Verdict string `json:"verdict"`
	// Reason says why a flow was denied ("no-rule"; the coordinator may
	// refine it to "posture", "mfa", "time-window" from the policy).
	Reason string `json:"reason,omitempty"`
	// Rule is the id of the rule or grant that accepted the flow
	// (FilterRule.Rule).
	Rule string `json:"rule,omitempty"`
	// Count is how many denied packets an aggregate stands for.
	Count uint64 `json:"count,omitempty"`
}

// LogoutRequest asks the coordinator to expire this node's key (or delete
// an ephemeral node); it answers with an Error of code logged_out and
// closes the channel.
type LogoutRequest struct{}

// WireType implementations.
func (*RegisterRequest) WireType() Type  { return TypeRegisterRequest }
func (*RegisterResponse) WireType() Type { return TypeRegisterResponse }
func (*MapRequest) WireType() Type       { return TypeMapRequest }
func (*MapResponse) WireType() Type      { return TypeMapResponse }
func (*UpdateRequest) WireType() Type    { return TypeUpdateRequest }
func (*Error) WireType() Type            { return TypeError }
func (*KeepAlive) WireType() Type        { return TypeKeepAlive }
func (*LogoutRequest) WireType() Type    { return TypeLogoutRequest }
func (*FlowBatch) WireType() Type        { return TypeFlowBatch }
func (*FlowAck) WireType() Type          { return TypeFlowAck }
func (*AccessCall) WireType() Type       { return TypeAccessCall }
func (*AccessReply) WireType() Type      { return TypeAccessReply }

// Error makes *Error usable as a Go error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns an empty message of type t, or nil for an unknown type.
func New(t Type) Message {
	switch t {
	case TypeRegisterRequest:
		return new(RegisterRequest)
	case TypeRegisterResponse:
		return new(RegisterResponse)
	case TypeMapRequest:
		return new(MapRequest)
	case TypeMapResponse:
		return new(MapResponse)
	case TypeUpdateRequest:
		return new(UpdateRequest)
	case TypeError:
		return new(Error)
	case TypeKeepAlive:
		return new(KeepAlive)
	case TypeLogoutRequest:
		return new(LogoutRequest)
	case TypeFlowBatch:
		return new(FlowBatch)
	case TypeFlowAck:
		return new(FlowAck)
	case TypeAccessCall:
		return new(AccessCall)
	case TypeAccessReply:
		return new(AccessReply)
	case TypeSSHCall:
		return new(SSHCall)
	case TypeSSHReply:
		return new(SSHReply)
	}
	return nil
}

// Apply applies the patch's set fields to n.
func (n *Node) Apply(p *PeerPatch) {
	if p.Endpoints != nil {
		n.Endpoints = *p.Endpoints
	}
	if p.HomeRelay != nil {
		n.HomeRelay = *p.HomeRelay
	}
	if p.Online != nil {
		n.Online = *p.Online
	}
	if p.LastSeen != nil {
		n.LastSeen = *p.LastSeen
	}
}
