package export

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/store"
)

// Event is one exported record, in the schema every sink writes: field
// names follow the Elastic Common Schema (ECS) where it has one, and
// Warren's own fields are under "warren". README.md ("Monitoring")
// documents each field.
type Event struct {
	// Cursor is the row's position in its source (the audit row ID);
	// it is not exported.
	Cursor int64 `json:"-"`

	Timestamp   time.Time `json:"@timestamp"`
	Event       EventInfo `json:"event"`
	User        *User     `json:"user,omitempty"`
	Source      *Endpoint `json:"source,omitempty"`
	Destination *Endpoint `json:"destination,omitempty"`
	Network     *Network  `json:"network,omitempty"`
	Warren      Warren    `json:"warren"`
}

// EventInfo is ECS "event".
type EventInfo struct {
	// ID is stable: a row delivered twice carries the same ID
	// ("audit-<row id>"), so a SIEM can drop or overwrite duplicates.
	ID       string   `json:"id"`
	Kind     string   `json:"kind"`               // "event"
	Category []string `json:"category,omitempty"` // ECS categories: "iam", "authentication", "configuration", "network"
	Action   string   `json:"action"`             // "node.register", "user.login", …
	// Outcome is ECS's: "success", "failure" or "unknown".
	Outcome string `json:"outcome"`
	Dataset string `json:"dataset"` // "warren.audit" (later "warren.flow")
}

// User is ECS "user".
type User struct {
	Name string `json:"name"`
}

// Endpoint is ECS "source" or "destination" (bytes and packets: a flow's,
// sent from that side).
type Endpoint struct {
	IP      string  `json:"ip,omitempty"`
	Port    int     `json:"port,omitempty"`
	Address string  `json:"address,omitempty"` // when not an IP address and port
	User    *User   `json:"user,omitempty"`
	Bytes   *uint64 `json:"bytes,omitempty"`
	Packets *uint64 `json:"packets,omitempty"`
}

// Network is ECS "network".
type Network struct {
	Transport string `json:"transport,omitempty"` // "tcp", "udp", "icmp"
}

// Warren holds what ECS has no field for.
type Warren struct {
	Actor   string          `json:"actor,omitempty"`   // "user:ann@example.com", "node:12", "apikey:wak_ab12", "system"
	Target  string          `json:"target,omitempty"`  // what was acted on, "node:12"
	Outcome string          `json:"outcome,omitempty"` // Warren's own: "ok", "denied", "error"
	Detail  json.RawMessage `json:"detail,omitempty"`  // the audit event's detail object
	// Flow: the flow record's own ID, the node that enforced it, the
	// rule that accepted it, the denied packets an aggregate stands for,
	// the source's and destination's nodes and tags.
	Flow *FlowInfo `json:"flow,omitempty"`
}

// FlowInfo is what a flow event carries beyond ECS.
type FlowInfo struct {
	RecordID string   `json:"recordId"`
	Reporter int64    `json:"reporter"`
	Update   bool     `json:"update,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Count    uint64   `json:"count,omitempty"`
	SrcNode  int64    `json:"srcNode,omitempty"`
	DstNode  int64    `json:"dstNode,omitempty"`
	SrcTags  []string `json:"srcTags,omitempty"`
	DstTags  []string `json:"dstTags,omitempty"`
	Start    string   `json:"start"`
}

// Datasets.
const (
	DatasetAudit = "warren.audit"
	DatasetFlow  = "warren.flow"
)

// FlowEventID is the exported ID of flow row seq.
func FlowEventID(seq int64) string { return "flow-" + strconv.FormatInt(seq, 10) }

// FromFlow converts a stored flow record: ECS source and destination
// (with their users, bytes and packets), network.transport, the verdict
// as the outcome (accept: success, deny: failure).
func FromFlow(f store.Flow) Event {
	outcome := "success"
	if f.Verdict != "accept" {
		outcome = "failure"
	}
	bin, pin, bout, pout := f.BytesIn, f.PacketsIn, f.BytesOut, f.PacketsOut
	e := Event{
		Cursor:    f.Seq,
		Timestamp: f.End.UTC(),
		Event: EventInfo{ID: FlowEventID(f.Seq), Kind: "event", Category: []string{"network"},
			Action: "flow." + f.Verdict, Outcome: outcome, Dataset: DatasetFlow},
		Source:      &Endpoint{IP: f.Src.Addr().String(), Port: int(f.Src.Port()), Bytes: &bin, Packets: &pin},
		Destination: &Endpoint{IP: f.Dst.Addr().String(), Port: int(f.Dst.Port()), Bytes: &bout, Packets: &pout},
		Network:     &Network{Transport: transport(f.Proto)},
		Warren: Warren{Target: fmt.Sprintf("node:%d", f.DstNode), Outcome: f.Verdict, Flow: &FlowInfo{
			RecordID: f.ID, Reporter: int64(f.Reporter), Update: f.Update, Rule: f.Rule, Reason: f.Reason, Count: f.Count,
			SrcNode: int64(f.SrcNode), DstNode: int64(f.DstNode), SrcTags: f.SrcTags, DstTags: f.DstTags,
			Start: f.Start.UTC().Format(time.RFC3339Nano)}},
	}
	if f.SrcUser != "" {
		e.Source.User = &User{Name: f.SrcUser}
		e.User = &User{Name: f.SrcUser}
	}
	if f.DstUser != "" {
		e.Destination.User = &User{Name: f.DstUser}
	}
	return e
}

func transport(proto uint8) string {
	switch proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	}
	return strconv.Itoa(int(proto))
}

// AuditEventID is the exported ID of audit row id.
func AuditEventID(id int64) string { return "audit-" + strconv.FormatInt(id, 10) }

// FromAudit converts a stored audit event.
func FromAudit(a store.AuditEvent) Event {
	e := Event{
		Cursor:    a.ID,
		Timestamp: a.Time.UTC(),
		Event: EventInfo{
			ID: AuditEventID(a.ID), Kind: "event", Category: auditCategories(a.Action), Action: a.Action,
			Outcome: ecsOutcome(a.Outcome), Dataset: DatasetAudit,
		},
		Warren: Warren{Actor: a.Actor, Target: a.Target, Outcome: a.Outcome},
	}
	if name, ok := strings.CutPrefix(a.Actor, "user:"); ok && name != "" {
		e.User = &User{Name: name}
	}
	if a.Remote != "" {
		e.Source = endpoint(a.Remote)
	}
	if a.Detail != "" && a.Detail != "{}" && json.Valid([]byte(a.Detail)) {
		e.Warren.Detail = json.RawMessage(a.Detail)
	}
	return e
}

// endpoint parses "ip:port", "ip" or anything else (kept as address).
func endpoint(s string) *Endpoint {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return &Endpoint{IP: ap.Addr().Unmap().String(), Port: int(ap.Port())}
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return &Endpoint{IP: a.Unmap().String()}
	}
	return &Endpoint{Address: s}
}

func ecsOutcome(o string) string {
	switch o {
	case "ok":
		return "success"
	case "denied", "error":
		return "failure"
	}
	return "unknown"
}

// auditCategories maps an action's first word to ECS event categories.
func auditCategories(action string) []string {
	kind, _, _ := strings.Cut(action, ".")
	switch kind {
	case "user", "apikey", "authkey":
		return []string{"iam"}
	case "login", "control", "auth", "api":
		return []string{"authentication"}
	case "policy", "node", "route", "routes", "attrs", "dns":
		return []string{"configuration"}
	}
	return nil
}
