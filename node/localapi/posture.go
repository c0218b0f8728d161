package localapi

import (
	"fmt"
	"strings"
	"time"
)

// PostureStatus is the coordinator's view of this node's posture, as
// warren status shows it: the attributes the coordinator holds for the
// node and the rules the node fails only because of posture. It is what
// the coordinator said, not what the node collected itself.
type PostureStatus struct {
	Attrs   []PostureAttr   `json:"attrs,omitempty"`
	Denials []PostureDenial `json:"denials,omitempty"`
	// MFA lists the rules the node fails only because its user's MFA is
	// older than they allow: warren login --mfa would let them pass.
	MFA []MFADenial `json:"mfa,omitempty"`
}

// MFADenial is a rule the node fails only because its user's MFA is not
// fresh enough.
type MFADenial struct {
	Destination string        `json:"destination"` // as the policy writes it
	Rule        string        `json:"rule"`        // "acls[2]"
	MaxAge      time.Duration `json:"maxAgeNs"`    // the rule's "mfa"
}

// String is the denial in one line for the node's user: "tag:db:5432
// needs MFA within 15m (rule acls[2]): run warren login --mfa".
func (d MFADenial) String() string {
	return fmt.Sprintf("%s needs MFA within %s (rule %s): run warren login --mfa", d.Destination, shortDuration(d.MaxAge), d.Rule)
}

// shortDuration writes d without zero units: 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// PostureAttr is one attribute: as the node collected it (warren
// posture's own attributes: no source), or as the coordinator holds it.
type PostureAttr struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Source is "node" for what this node reported, otherwise who set it
	// ("admin alice@example.com", "integration mdm-sync"); empty for what
	// the node collected itself.
	Source      string    `json:"source,omitempty"`
	CollectedAt time.Time `json:"collectedAt,omitzero"`
	// Expires is when a set attribute stops counting (zero: never).
	Expires time.Time `json:"expires,omitzero"`
	// Stale is true when the report is too old to count: the coordinator
	// treats the attribute as absent.
	Stale bool `json:"stale,omitempty"`
}

// PostureDenial is a rule the node fails only because of its posture.
type PostureDenial struct {
	// Destination is what the rule would let the node reach, as the
	// policy writes it ("tag:db:5432").
	Destination string `json:"destination"`
	// Posture is the posture the rule requires ("posture:managed").
	Posture string `json:"posture"`
	// Reason is the failing condition, with the value the coordinator
	// holds ("node:diskEncrypted is false (needs == true)").
	Reason string `json:"reason"`
}

// String is the denial in one line for the node's user: "denied
// tag:db:5432: needs posture:managed: node:diskEncrypted is false (needs
// == true)".
func (d PostureDenial) String() string {
	return fmt.Sprintf("denied %s: needs %s: %s", d.Destination, d.Posture, d.Reason)
}
