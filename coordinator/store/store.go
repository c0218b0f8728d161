// Package store is the coordinator's persistent state: users, nodes and
// their posture attributes, pre-auth keys, API keys, audit events, flow
// logs, policy history, just-in-time access requests and the log sinks'
// cursors, behind one
// interface so that SQLite (the embedded default, see Open) and PostgreSQL
// (OpenURL with a postgres:// URL; several coordinators may share one
// database) are interchangeable: one set of queries and one contract,
// tested on both.
//
// The store holds public keys and hashes of secrets, and two kinds of
// secret it must be able to read back: OpenID refresh tokens and TOTP
// secrets, which it seals (Options.Secrets, see package keyring) before
// they reach the database and opens when read, each bound to its user and
// column. It must never be given a private key or a plaintext pre-auth or
// API key, and never write a refresh token or TOTP secret unsealed when it
// has a key ring, and never log or put in an error a database URL (it may
// hold a password). Every multi-row change runs in one transaction
// (Store.Tx); a failed or rejected request leaves the store exactly as it
// was.
package store

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// IDs of stored entities.
type (
	UserID    int64
	NodeID    int64
	AuthKeyID int64
	APIKeyID  int64
)

// Role is a user's role on the coordinator.
type Role string

// Roles.
const (
	RoleMember Role = "member"
	RoleAdmin  Role = "admin"
)

// Errors. Implementations wrap them so callers can use errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrAddressSpaceFull means no free mesh address is left.
	ErrAddressSpaceFull = errors.New("mesh address space exhausted")
)

// User is a person (from OIDC or a local account).
type User struct {
	ID    UserID
	Name  string // login name, unique; usually the email
	Email string
	// DisplayName is the name the identity provider gives the user ("name"
	// claim) at the last sign-in; "" when none.
	DisplayName string
	Groups      []string
	Role        Role
	Disabled    bool
	Created     time.Time
	// Issuer and Subject identify the user at an OpenID Provider (both
	// empty for local users); the pair is unique.
	Issuer, Subject string
	// MFAAt is the time of the user's last login with a second factor
	// (zero: never), for the policy's mfa condition.
	MFAAt time.Time
	// PasswordHash (PHC-formatted argon2id) and TOTPSecret (base32) are
	// the credentials of a local user; empty for IdP users. TOTPSecret is
	// stored sealed (see Options.Secrets).
	PasswordHash string
	TOTPSecret   string
	// RefreshToken is the OpenID Provider's refresh token from the user's
	// last sign-in (a secret; empty when none was issued), with which the
	// coordinator asks the provider now and then whether the user may
	// still sign in; IdPCheckedAt is when it last did (zero: never).
	// RefreshToken is stored sealed (see Options.Secrets).
	RefreshToken string
	IdPCheckedAt time.Time
	// TOTPLastStep is the TOTP time step of the last code accepted (0:
	// none), so that a code is never accepted twice, even across restarts.
	TOTPLastStep int64
}

// Node is a device or server registered with the coordinator.
type Node struct {
	ID         NodeID
	MachineKey key.MachinePublic // unique
	NodeKey    key.NodePublic    // unique
	DiscoKey   key.DiscoPublic
	// UserID owns the node; for tagged nodes it is the user who registered
	// it (tagged nodes are owned by their tags, see Tags).
	UserID    UserID
	Tags      []string
	IPv4      netip.Addr // in 100.64.0.0/10, unique, stable for the node
	IPv6      netip.Addr // in fd7a:115c:a1e0::/48, unique, stable
	Hostname  string     // as the node reported it
	Name      string     // unique DNS label derived from Hostname, or given (GivenName)
	Created   time.Time
	LastSeen  time.Time // zero: never connected
	KeyExpiry time.Time // zero: never expires
	Endpoints []netip.AddrPort
	HomeRelay int
	Ephemeral bool
	// AuthKeyID is the pre-auth key that registered the node (0: login).
	AuthKeyID AuthKeyID
	// Pending is set while the node waits for an admin's approval
	// (device approval); a pending node gets no peers.
	Pending bool
	// KeyLifetime overrides the coordinator's key expiry for this node
	// when it is a user's node: 0 means the coordinator's default,
	// negative (KeyLifetimeNever) means the key never expires, positive
	// is how long each new key lasts. It is stored with one-second
	// precision. Tagged nodes never expire, whatever it says.
	KeyLifetime time.Duration
	// GivenName is set when an admin named the node (nodes rename): Name
	// then stays as given when the hostname changes.
	GivenName bool
	// AdvertisedRoutes are the subnet routes (and the exit-node pair
	// 0.0.0.0/0 and ::/0) the node offers to forward to, as it last sent
	// them; ApprovedRoutes are those an admin or the policy approved. A
	// route is in force when it is in both (see routes.Enabled). Both are
	// sorted, without duplicates.
	AdvertisedRoutes []netip.Prefix
	ApprovedRoutes   []netip.Prefix
}

// KeyLifetimeNever is the Node.KeyLifetime of a node whose key never
// expires.
const KeyLifetimeNever time.Duration = -1

// Tagged reports whether the node is owned by tags rather than a user.
func (n *Node) Tagged() bool { return len(n.Tags) > 0 }

// Expired reports whether the node's key has expired at now.
func (n *Node) Expired(now time.Time) bool {
	return !n.KeyExpiry.IsZero() && !now.Before(n.KeyExpiry)
}

// AuthKey is a pre-auth key. Only its hash is stored; the plaintext is shown
// once, at creation.
type AuthKey struct {
	ID     AuthKeyID
	Prefix string // first characters of the plaintext, for humans
	Hash   []byte // SHA-256 of the plaintext, unique
	UserID UserID // nodes registered with it belong to (or were registered by) this user
	// CreatorID is the user who created the key, whose right to apply
	// its tags is checked again each time the key is used: 0 is the
	// coordinator host's own administrator (the admin socket), and
	// CreatorUnknown marks keys created before creators were recorded.
	CreatorID  UserID
	Reusable   bool
	Ephemeral  bool
	Tags       []string
	Expiration time.Time // zero: never
	Created    time.Time
	UsedCount  int
	Revoked    bool
}

// CreatorUnknown is the AuthKey.CreatorID of keys created before the
// store recorded creators.
const CreatorUnknown UserID = -1

// APIKey authenticates an admin (or member) to the admin API. Only its hash
// is stored.
type APIKey struct {
	ID         APIKeyID
	Prefix     string
	Hash       []byte // SHA-256 of the plaintext, unique
	UserID     UserID
	Expiration time.Time // zero: never
	Created    time.Time
	LastUsed   time.Time
	Revoked    bool
	// Role limits what the key may do: empty acts as its owner (admin or
	// member); APIKeyIntegration may only read nodes' attributes and set
	// custom: ones. Name says which job an integration key is for
	// ("mdm-sync"); it becomes the source of what the key sets.
	Role APIKeyRole
	Name string
}

// APIKeyRole is what an API key may do beyond authenticating its owner.
type APIKeyRole string

// API key roles.
const (
	APIKeyOwner       APIKeyRole = ""
	APIKeyIntegration APIKeyRole = "integration"
)

// NodeAttr is one posture attribute held for a node: a node: attribute
// the node reported, or a custom: one an admin or integration set.
type NodeAttr struct {
	Node  NodeID
	Name  string // "node:diskEncrypted", "custom:mdmCompliant"
	Value string
	// Source is "node" for what the node reported, else who set it
	// ("admin alice@example.com", "integration mdm-sync").
	Source string
	// CollectedAt is when the node says it collected the value (its
	// clock: informational only; zero for set attributes).
	CollectedAt time.Time
	// ReportedAt is the coordinator's time of the last report or
	// heartbeat that confirmed the value (or when it was set); freshness
	// is judged on it.
	ReportedAt time.Time
	// ExpiresAt is when a set attribute stops counting (zero: never).
	ExpiresAt time.Time
}

// AuditEvent records who did what, when, from where, and how it ended.
type AuditEvent struct {
	ID      int64
	Time    time.Time
	Actor   string // "user:ann@example.com", "node:mkey:…", "apikey:wak_ab12", "system"
	Action  string // "node.register", "authkey.create", "control.handshake", …
	Target  string // what was acted on, e.g. "node:12"
	Remote  string // remote address, if any
	Outcome string // "ok", "denied", "error"
	Detail  string // JSON object with more context; never a secret
}

// PolicyVersion is one accepted policy file, kept so admins can see who
// changed what and so the last good policy survives a restart with a broken
// file.
type PolicyVersion struct {
	ID      int64
	Hash    string // SHA-256 of Source, hex
	Source  string // the file as it was accepted
	Author  string // who applied it: "file:/etc/warren/policy.hujson", "user:ann@example.com"
	Diff    string // unified diff against the previous version ("" for the first)
	Created time.Time
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	Since, Until time.Time
	Action       string
	Actor        string
	Target       string
	Outcome      string
	Limit        int // 0: a default of 1000
}

// Queries are the reads and writes available both on the Store and inside a
// transaction.
type Queries interface {
	CreateUser(ctx context.Context, u User) (User, error) // ErrConflict on a taken name
	GetUser(ctx context.Context, id UserID) (User, error)
	GetUserByName(ctx context.Context, name string) (User, error)
	// GetUserByIdentity finds the user an OpenID Provider's issuer and
	// subject belong to.
	GetUserByIdentity(ctx context.Context, issuer, subject string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, u User) error
	// DeleteUser deletes the user with its user-owned nodes and keys. Tagged
	// nodes it registered are kept (their UserID stays as a record).
	DeleteUser(ctx context.Context, id UserID) error

	// CreateNode inserts n, allocating n.IPv4/n.IPv6 (unless set) and a
	// unique n.Name derived from n.Hostname. It returns the stored node.
	CreateNode(ctx context.Context, n Node) (Node, error)
	GetNode(ctx context.Context, id NodeID) (Node, error)
	GetNodeByMachineKey(ctx context.Context, k key.MachinePublic) (Node, error)
	GetNodeByNodeKey(ctx context.Context, k key.NodePublic) (Node, error)
	ListNodes(ctx context.Context) ([]Node, error)
	// ListNodePage returns one page of the nodes f selects, by name, and
	// how many it selects in all (nodepage.go).
	ListNodePage(ctx context.Context, f NodePageFilter) ([]Node, int, error)
	// UpdateNode writes every field of n except ID, Created, IPv4 and IPv6.
	// Name is written as is when GivenName is set (ErrConflict if another
	// node has it; see ValidNodeName); otherwise, if Hostname changed or
	// the name was given before, Name is re-derived (unique).
	UpdateNode(ctx context.Context, n Node) (Node, error)
	DeleteNode(ctx context.Context, id NodeID) error

	CreateAuthKey(ctx context.Context, k AuthKey) (AuthKey, error)
	GetAuthKey(ctx context.Context, id AuthKeyID) (AuthKey, error)
	GetAuthKeyByHash(ctx context.Context, hash []byte) (AuthKey, error)
	ListAuthKeys(ctx context.Context) ([]AuthKey, error)
	UpdateAuthKey(ctx context.Context, k AuthKey) error // UsedCount, Revoked, Expiration

	CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error)
	GetAPIKey(ctx context.Context, id APIKeyID) (APIKey, error)
	GetAPIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	UpdateAPIKey(ctx context.Context, k APIKey) error // LastUsed, Revoked, Expiration

	AppendAudit(ctx context.Context, e AuditEvent) error
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// PruneAudit deletes the audit events older than before and returns
	// how many it deleted.
	PruneAudit(ctx context.Context, before time.Time) (int64, error)
	// ListAuditAfter returns up to n audit events with IDs above after,
	// in ID order (n <= 0 or above 10000: 10000). IDs are never reused,
	// even once every older event is pruned, so an ID is a cursor.
	ListAuditAfter(ctx context.Context, after int64, n int) ([]AuditEvent, error)
	// CountAuditAfter counts the audit events with IDs above after (a log
	// sink's backlog).
	CountAuditAfter(ctx context.Context, after int64) (int64, error)

	// SinkCursor returns how far the log sink named sink has delivered
	// source ("audit"): the last row ID it delivered, 0 if none.
	SinkCursor(ctx context.Context, sink, source string) (int64, error)
	// SetSinkCursor records sink's cursor over source.
	SetSinkCursor(ctx context.Context, sink, source string, cursor int64) error

	// InsertFlows stores flow records, skipping IDs already stored, and
	// returns how many it added; ListFlows returns those a filter
	// selects, newest first; PruneFlows deletes up to limit of those
	// older than before (see flows.go).
	InsertFlows(ctx context.Context, flows []Flow) (int64, error)
	// ListFlowsAfter returns up to n flows with row numbers (Seq) above
	// after, in row order (a log sink's cursor); CountFlowsAfter counts
	// them. DeniedBySource sums denied packets per source address over
	// the flows that ended at or after since.
	ListFlowsAfter(ctx context.Context, after int64, n int) ([]Flow, error)
	CountFlowsAfter(ctx context.Context, after int64) (int64, error)
	DeniedBySource(ctx context.Context, since time.Time) (map[string]int64, error)
	// HourBaseline counts the accepted flows to dst that ended in [from,
	// to): all of them, and those in hour (0-23, UTC) of the day.
	HourBaseline(ctx context.Context, dst NodeID, hour int, from, to time.Time) (total, atHour int64, err error)
	ListFlows(ctx context.Context, f FlowFilter) ([]Flow, error)
	PruneFlows(ctx context.Context, before time.Time, limit int) (int64, error)

	// ListNodeAttrs returns the attributes held for node id, by name.
	ListNodeAttrs(ctx context.Context, id NodeID) ([]NodeAttr, error)
	// ListAllNodeAttrs returns every node's attributes, by node and name.
	ListAllNodeAttrs(ctx context.Context) ([]NodeAttr, error)
	// PutNodeAttr inserts or replaces one attribute (a.Node, a.Name).
	PutNodeAttr(ctx context.Context, a NodeAttr) error
	// DeleteNodeAttr deletes one attribute; ErrNotFound if none.
	DeleteNodeAttr(ctx context.Context, id NodeID, name string) error
	// TouchNodeAttrs sets reported_at of node id's attributes whose names
	// start with prefix, and returns how many it touched.
	TouchNodeAttrs(ctx context.Context, id NodeID, prefix string, at time.Time) (int64, error)

	// SavePolicy records an accepted policy file as the newest version.
	SavePolicy(ctx context.Context, p PolicyVersion) (PolicyVersion, error)
	// LatestPolicy returns the newest policy version, or ErrNotFound.
	LatestPolicy(ctx context.Context) (PolicyVersion, error)
	// ListPolicies returns up to limit versions, newest first (0: 100).
	ListPolicies(ctx context.Context, limit int) ([]PolicyVersion, error)

	// CreateAccessRequest inserts r with a new ID (never reused) and
	// returns it; GetAccessRequest reads one (ErrNotFound);
	// ListAccessRequests returns those f selects, newest first;
	// UpdateAccessRequest writes r's decision fields (Rule, Duration,
	// State, BreakGlass, Approver, Note, Decided, Expires, Ended);
	// NextAccessExpiry is the earliest expiry of the requests in state
	// (zero: none). See access.go.
	CreateAccessRequest(ctx context.Context, r AccessRequest) (AccessRequest, error)
	GetAccessRequest(ctx context.Context, id int64) (AccessRequest, error)
	ListAccessRequests(ctx context.Context, f AccessFilter) ([]AccessRequest, error)
	UpdateAccessRequest(ctx context.Context, r AccessRequest) error
	NextAccessExpiry(ctx context.Context, state string) (time.Time, error)

	// CreateSSHSession inserts a started session (ErrConflict when its ID
	// is taken), keeping recordToken (non-empty: the coordinator records
	// it) as a hash; GetSSHSession reads one (ErrNotFound);
	// ListSSHSessions returns those f selects, newest first;
	// EndSSHSession writes the end fields (Ended, Duration, ExitCode,
	// Reason) of s.ID if node s.Node runs it and it has not ended
	// (ErrNotFound otherwise) and voids its recording token;
	// TakeSSHRecordToken checks token against session id's (in constant
	// time), voids it (single use) and returns the session, or
	// ErrNotFound; SetSSHRecording sets where its recording is. See ssh.go.
	CreateSSHSession(ctx context.Context, s SSHSession, recordToken string) error
	GetSSHSession(ctx context.Context, id string) (SSHSession, error)
	ListSSHSessions(ctx context.Context, f SSHSessionFilter) ([]SSHSession, error)
	EndSSHSession(ctx context.Context, s SSHSession) error
	TakeSSHRecordToken(ctx context.Context, id, token string) (SSHSession, error)
	SetSSHRecording(ctx context.Context, id, recording string) error

	// The change feed and presence of replicas sharing the database (see
	// changes.go and package coordinator/replica).
	ListChanges(ctx context.Context, after int64, n int) ([]Change, error)
	LastChange(ctx context.Context) (first, last int64, err error)
	PruneChanges(ctx context.Context, before time.Time) (int64, error)
	SetSession(ctx context.Context, id NodeID, open bool, at time.Time) error
	RemoteSessions(ctx context.Context, id NodeID, alive time.Time) (int, error)
	LiveSessions(ctx context.Context, alive time.Time) ([]NodeID, error)
	Heartbeat(ctx context.Context, at time.Time) error
	LeaveReplica(ctx context.Context) error
	SweepReplicas(ctx context.Context, dead time.Time) ([]NodeID, error)
	TryLease(ctx context.Context, name string, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, name string) error
}

// Store is the coordinator's state. Methods called on it directly run as
// their own transaction; Tx runs several in one.
type Store interface {
	Queries
	// Tx runs fn in one transaction. If fn returns an error (or panics) the
	// transaction is rolled back and nothing fn did is kept. fn must read
	// and write through q only: the store has one writer, which fn holds,
	// so a write on the Store itself inside fn waits until ctx ends.
	Tx(ctx context.Context, fn func(q Queries) error) error
	Close() error
}

// Sealer encrypts the secrets the store keeps (users' TOTP secrets and
// refresh tokens); *keyring.Ring is one. additional binds a value to its
// place: Open fails for a value sealed with other additional data.
type Sealer interface {
	Seal(plaintext, additional []byte) (string, error)
	Open(sealed string, additional []byte) ([]byte, error)
	// Sealed reports whether s is a sealed value (else a plaintext stored
	// before secrets were sealed); Current, whether it is sealed with the
	// newest key.
	Sealed(s string) bool
	Current(s string) bool
}

// Options tune OpenWith and OpenURL; the zero value is what Open uses.
type Options struct {
	Logger *slog.Logger
	// Secrets seals users' TOTP secrets and refresh tokens. With it, Open
	// seals every stored value that is in plain text or sealed with an
	// older key (after a rotation). Without it (tests, tools) they are
	// stored as given, and reading a sealed one fails.
	Secrets Sealer
	// SharedPool makes reads and writes share one pool of connections, as
	// the store did before it had one writer; only benchmarks use it, to
	// compare the two in one run. SQLite only.
	SharedPool bool
	// Observe, if set, is told how long each database call took: op is
	// "read" (a statement on the read pool), "write" (a statement on the
	// writer outside a transaction) or "tx" (a whole transaction, from
	// BEGIN to COMMIT or rollback). Metrics time the store with it; it
	// must not block.
	Observe func(op string, d time.Duration)
	// ReplicaID names the coordinator process using the store in the
	// change feed (changes.go): its changes are recorded as its own, so
	// it can skip them, and its sessions and leases are held in its name.
	// Unique per process among the replicas sharing one database. Empty
	// (one coordinator, or a tool) records no changes and no sessions.
	ReplicaID string
}

// Mesh address ranges.
var (
	IPv4Range = netip.MustParsePrefix("100.64.0.0/10")
	IPv6Range = netip.MustParsePrefix("fd7a:115c:a1e0::/48")
)
