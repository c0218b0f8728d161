// Package api is the coordinator's admin HTTP API (JSON over a root-only
// unix socket on the coordinator host, or HTTPS with an API key) and the Go
// client the warren-coordinator CLI uses to call it.
//
// Every request is authenticated before anything else happens; members may
// see and manage only their own nodes and keys; every change is audited by
// the registry. Plaintext keys appear only in the response that creates
// them, never in a listing or a log.
package api

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/coordinator/policyfile"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// User is a user as the API shows it.
type User struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	Email    string    `json:"email,omitempty"`
	Groups   []string  `json:"groups,omitempty"`
	Role     string    `json:"role"`
	Disabled bool      `json:"disabled"`
	Created  time.Time `json:"created"`
	// Issuer is the OpenID Provider the user signs in at ("" for none),
	// and Subject the user's account there (the "sub" claim): the pair
	// names the account across systems, as an email can change.
	Issuer  string `json:"issuer,omitempty"`
	Subject string `json:"subject,omitempty"`
	// LastMFA is when the user last signed in with a second factor.
	LastMFA *time.Time `json:"lastMFA,omitempty"`
	// Password and TOTP report whether local-login credentials are set
	// (never the credentials themselves).
	Password bool `json:"password"`
	TOTP     bool `json:"totp"`
	// EffectiveGroups are the policy's groups the user is in, as rules
	// see them, each with where the membership comes from: the policy
	// file, the identity provider or the user record (Groups).
	EffectiveGroups []GroupMembership `json:"effectiveGroups,omitempty"`
}

// CreateUserRequest is the body of POST /api/v1/users.
type CreateUserRequest struct {
	Name   string   `json:"name"`
	Email  string   `json:"email,omitempty"`
	Groups []string `json:"groups,omitempty"`
	Admin  bool     `json:"admin,omitempty"`
}

// Node is a node as the API shows it.
type Node struct {
	ID         int64            `json:"id"`
	Name       string           `json:"name"`
	Hostname   string           `json:"hostname"`
	User       string           `json:"user,omitempty"`
	Tags       []string         `json:"tags,omitempty"`
	IPv4       netip.Addr       `json:"ipv4"`
	IPv6       netip.Addr       `json:"ipv6"`
	MachineKey string           `json:"machineKey"`
	NodeKey    string           `json:"nodeKey"`
	Online     bool             `json:"online"`
	LastSeen   time.Time        `json:"lastSeen,omitzero"`
	Created    time.Time        `json:"created"`
	KeyExpiry  time.Time        `json:"keyExpiry,omitzero"`
	Expired    bool             `json:"expired"`
	Ephemeral  bool             `json:"ephemeral"`
	Endpoints  []netip.AddrPort `json:"endpoints,omitempty"`
	// Pending is set while the node waits for an admin's approval.
	Pending bool `json:"pending,omitempty"`
	// KeyLifetime is the node's own key lifetime, "720h0m0s" or "never";
	// empty when the node has the coordinator's default.
	KeyLifetime string `json:"keyLifetime,omitempty"`
	// AdvertisedRoutes are the subnet routes (0.0.0.0/0 and ::/0 for an
	// exit node) the node offers; ApprovedRoutes those approved. A route
	// is in force when it is in both.
	AdvertisedRoutes []netip.Prefix `json:"advertisedRoutes,omitempty"`
	ApprovedRoutes   []netip.Prefix `json:"approvedRoutes,omitempty"`
}

// SetKeyLifetimeRequest is the body of POST /api/v1/nodes/{id}/key-lifetime.
type SetKeyLifetimeRequest struct {
	// Lifetime is a duration ("720h"), "never" or "default"; see
	// ParseKeyLifetime.
	Lifetime string `json:"lifetime"`
}

// ParseKeyLifetime reads a node key lifetime as the API and CLI take it:
// "default" (0: the coordinator's --key-expiry), "never"
// (store.KeyLifetimeNever) or a positive duration such as "720h". The
// registry checks the duration's bounds.
func ParseKeyLifetime(s string) (time.Duration, error) {
	switch s {
	case "default":
		return 0, nil
	case "never":
		return store.KeyLifetimeNever, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("key lifetime %q: want a positive duration such as 720h, never or default", s)
	}
	return d, nil
}

// RenameNodeRequest is the body of POST /api/v1/nodes/{id}/rename.
type RenameNodeRequest struct {
	Name string `json:"name"` // a DNS label
}

// SetRoleRequest is the body of POST /api/v1/users/{id}/role.
type SetRoleRequest struct {
	Role string `json:"role"` // "admin" or "member"
}

// SetTagsRequest is the body of POST /api/v1/nodes/{id}/tags.
type SetTagsRequest struct {
	Tags []string `json:"tags"`
}

// AuthKey is a pre-auth key as the API shows it. Key is set only in the
// response that created it.
type AuthKey struct {
	ID         int64     `json:"id"`
	Key        string    `json:"key,omitempty"`
	Prefix     string    `json:"prefix"`
	UserID     int64     `json:"userId"`
	User       string    `json:"user,omitempty"`    // the owning user's name
	Creator    string    `json:"creator,omitempty"` // who created it ("" if unknown)
	Reusable   bool      `json:"reusable"`
	Ephemeral  bool      `json:"ephemeral"`
	Tags       []string  `json:"tags,omitempty"`
	Expiration time.Time `json:"expiration,omitzero"`
	Created    time.Time `json:"created"`
	UsedCount  int       `json:"usedCount"`
	Revoked    bool      `json:"revoked"`
}

// CreateAuthKeyRequest is the body of POST /api/v1/authkeys.
type CreateAuthKeyRequest struct {
	UserID    int64    `json:"userId,omitempty"` // 0: the caller
	Reusable  bool     `json:"reusable,omitempty"`
	Ephemeral bool     `json:"ephemeral,omitempty"`
	Tags      []string `json:"tags,omitempty"`
	TTL       Duration `json:"ttl,omitempty"`
}

// APIKey is an API key as the API shows it. Key is set only at creation.
type APIKey struct {
	ID         int64     `json:"id"`
	Key        string    `json:"key,omitempty"`
	Prefix     string    `json:"prefix"`
	UserID     int64     `json:"userId"`
	User       string    `json:"user,omitempty"` // the owning user's name
	Expiration time.Time `json:"expiration,omitzero"`
	Created    time.Time `json:"created"`
	LastUsed   time.Time `json:"lastUsed,omitzero"`
	Revoked    bool      `json:"revoked"`
	// Role is "" for a key acting as its owner, "integration" for one
	// that may only read nodes' attributes and set custom: ones; Name
	// names an integration key's job ("mdm-sync").
	Role string `json:"role,omitempty"`
	Name string `json:"name,omitempty"`
}

// CreateAPIKeyRequest is the body of POST /api/v1/apikeys. Role
// "integration" (admins only) makes an integration key named Name, owned
// by the admin UserID (default: the caller).
type CreateAPIKeyRequest struct {
	UserID int64    `json:"userId,omitempty"`
	TTL    Duration `json:"ttl,omitempty"`
	Role   string   `json:"role,omitempty"`
	Name   string   `json:"name,omitempty"`
}

// AuditEvent is one audit event.
type AuditEvent struct {
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Target  string    `json:"target,omitempty"`
	Remote  string    `json:"remote,omitempty"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
}

// WhoAmI describes the caller.
type WhoAmI struct {
	Actor string `json:"actor"`
	Admin bool   `json:"admin"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Duration is a time.Duration that reads and writes as "90s", "24h".
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

func nodeJSON(n registry.NodeInfo) Node {
	return Node{ID: int64(n.ID), Name: n.Name, Hostname: n.Hostname, User: n.User, Tags: n.Tags,
		IPv4: n.IPv4, IPv6: n.IPv6, MachineKey: n.MachineKey.String(), NodeKey: n.NodeKey.String(),
		Online: n.Online, LastSeen: n.LastSeen, Created: n.Created, KeyExpiry: n.KeyExpiry,
		Expired: n.Expired, Ephemeral: n.Ephemeral, Endpoints: n.Endpoints, Pending: n.Pending,
		KeyLifetime: keyLifetimeJSON(n.KeyLifetime), AdvertisedRoutes: n.AdvertisedRoutes, ApprovedRoutes: n.ApprovedRoutes}
}

// keyLifetimeJSON is Node.KeyLifetime: empty for the default.
func keyLifetimeJSON(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return registry.FormatKeyLifetime(d)
}

// userNames maps user IDs to names, for listings that show who owns what.
type userNames map[store.UserID]string

func authKeyJSON(k store.AuthKey, plain string, names userNames) AuthKey {
	return AuthKey{ID: int64(k.ID), Key: plain, Prefix: k.Prefix, UserID: int64(k.UserID), User: names[k.UserID],
		Creator: names[k.CreatorID], Reusable: k.Reusable, Ephemeral: k.Ephemeral, Tags: k.Tags, Expiration: k.Expiration,
		Created: k.Created, UsedCount: k.UsedCount, Revoked: k.Revoked}
}

func apiKeyJSON(k store.APIKey, plain string, names userNames) APIKey {
	return APIKey{ID: int64(k.ID), Key: plain, Prefix: k.Prefix, UserID: int64(k.UserID), User: names[k.UserID],
		Expiration: k.Expiration, Created: k.Created, LastUsed: k.LastUsed, Revoked: k.Revoked, Role: string(k.Role), Name: k.Name}
}

// ApplyPolicyRequest is the body of POST /api/v1/policy: a whole policy
// file to put in force (and write to the coordinator's policy file).
type ApplyPolicyRequest struct {
	Source string `json:"source"`
}

// ApplyPolicyResponse is the policy in force after POST /api/v1/policy;
// Changed is false when the source was what was in force already (no new
// version).
type ApplyPolicyResponse struct {
	policyfile.Status
	Changed bool `json:"changed"`
}

// PolicyVersion is one accepted policy file in the history.
type PolicyVersion struct {
	ID      int64     `json:"id"`
	Hash    string    `json:"hash"`
	Author  string    `json:"author"`
	Created time.Time `json:"created"`
	Diff    string    `json:"diff,omitempty"`
}

// ExplainRequest asks whether a connection would be allowed. Src and Dst
// are node names (resolved to the real node), user logins, tags, host
// aliases or IP addresses.
type ExplainRequest struct {
	Src   string    `json:"src"`
	Dst   string    `json:"dst"`
	Port  uint16    `json:"port"`
	Proto string    `json:"proto,omitempty"` // default tcp
	At    time.Time `json:"at,omitzero"`     // default now
	// Posture and MFAAge describe a source given as a selector.
	Posture map[string]string `json:"posture,omitempty"`
	MFAAge  string            `json:"mfaAge,omitempty"`
}

// ExplainResponse is the decision: the rule that allows the connection, or
// the closest rules and why each did not.
type ExplainResponse struct {
	Src     string       `json:"src"`
	Dst     string       `json:"dst"`
	Allowed bool         `json:"allowed"`
	Rule    *ExplainRule `json:"rule,omitempty"`
	// Grant is the just-in-time grant that allows it, when no rule does.
	Grant      *ExplainGrant      `json:"grant,omitempty"`
	Candidates []ExplainCandidate `json:"candidates,omitempty"`
	Text       string             `json:"text"`
	// SrcGroups are the policy's groups the source user (or the owner of
	// the source node) is in, and where each membership comes from.
	SrcGroups []GroupMembership `json:"srcGroups,omitempty"`
}

// ExplainRule is an acls rule: its number (from 1), line and text.
type ExplainRule struct {
	Index int    `json:"index"`
	Line  int    `json:"line"`
	Text  string `json:"text"`
}

// ExplainGrant is a just-in-time grant in force: the request's id, the
// access rule it was granted under, its destination and its end.
type ExplainGrant struct {
	ID    string    `json:"id"`
	Rule  string    `json:"rule"`
	Dst   string    `json:"dst"`
	Until time.Time `json:"until"`
}

// ExplainCandidate is a rule that came close, with why it did not apply.
type ExplainCandidate struct {
	Rule    ExplainRule `json:"rule"`
	Reasons []string    `json:"reasons"`
}
