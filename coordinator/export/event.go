package export

import (
	"encoding/json"
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

// Endpoint is ECS "source" or "destination".
type Endpoint struct {
	IP      string `json:"ip,omitempty"`
	Port    int    `json:"port,omitempty"`
	Address string `json:"address,omitempty"` // when not an IP address and port
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
}

// Datasets.
const (
	DatasetAudit = "warren.audit"
)

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
