package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// migration is one schema step, written for each backend; versions
// count from 1 and are shared: version N is the same change in both
// dialects (postgres: see migrations_postgres.go).
type migration struct {
	version          int
	sqlite, postgres string
}

// migrations are applied in order, each in its own transaction, and
// recorded in schema_migrations (version, applied_at in unix nanoseconds).
// They are append-only: a released migration is never edited, a change is
// a new one.
//
// Schema conventions: keys are stored in their text form (key.X.String),
// lists (groups, tags, endpoints) as JSON arrays, times as unix
// nanoseconds with 0 for the zero time, addresses as text. nodes.ipv4_num
// is the IPv4 address as a number, so the allocator can find the highest
// address and the gaps with an index. nodes.key_lifetime_seconds is
// Node.KeyLifetime in whole seconds, 0 for the default and -1 for never.
var migrations = []migration{
	{1, `
CREATE TABLE users (
	id       INTEGER PRIMARY KEY,
	name     TEXT NOT NULL UNIQUE,
	email    TEXT NOT NULL DEFAULT '',
	groups   TEXT NOT NULL DEFAULT '[]',
	role     TEXT NOT NULL CHECK (role IN ('member', 'admin')),
	disabled INTEGER NOT NULL DEFAULT 0,
	created  INTEGER NOT NULL
);
-- nodes.user_id has no foreign key: tagged nodes outlive the user who
-- registered them (DeleteUser removes user-owned nodes explicitly).
CREATE TABLE nodes (
	id          INTEGER PRIMARY KEY,
	machine_key TEXT NOT NULL UNIQUE,
	node_key    TEXT NOT NULL UNIQUE,
	disco_key   TEXT NOT NULL,
	user_id     INTEGER NOT NULL,
	tags        TEXT NOT NULL DEFAULT '[]',
	ipv4        TEXT NOT NULL UNIQUE,
	ipv4_num    INTEGER NOT NULL UNIQUE,
	ipv6        TEXT NOT NULL UNIQUE,
	hostname    TEXT NOT NULL,
	name        TEXT NOT NULL UNIQUE,
	created     INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL DEFAULT 0,
	key_expiry  INTEGER NOT NULL DEFAULT 0,
	endpoints   TEXT NOT NULL DEFAULT '[]',
	home_relay  INTEGER NOT NULL DEFAULT 0,
	ephemeral   INTEGER NOT NULL DEFAULT 0,
	auth_key_id INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX nodes_user ON nodes(user_id);
CREATE TABLE auth_keys (
	id         INTEGER PRIMARY KEY,
	prefix     TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	reusable   INTEGER NOT NULL DEFAULT 0,
	ephemeral  INTEGER NOT NULL DEFAULT 0,
	tags       TEXT NOT NULL DEFAULT '[]',
	expiration INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	used_count INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE api_keys (
	id         INTEGER PRIMARY KEY,
	prefix     TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	expiration INTEGER NOT NULL DEFAULT 0,
	created    INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0,
	revoked    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit_events (
	id      INTEGER PRIMARY KEY,
	time    INTEGER NOT NULL,
	actor   TEXT NOT NULL,
	action  TEXT NOT NULL,
	target  TEXT NOT NULL DEFAULT '',
	remote  TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL,
	detail  TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_time ON audit_events(time);
CREATE INDEX audit_action ON audit_events(action, time);
`, postgresV1},
	{2, `
CREATE TABLE policies (
	id      INTEGER PRIMARY KEY,
	hash    TEXT NOT NULL,
	source  TEXT NOT NULL,
	author  TEXT NOT NULL,
	diff    TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL
);
`, postgresV2},
	{3, `
ALTER TABLE users ADD COLUMN issuer TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN mfa_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_secret TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX users_identity ON users (issuer, subject) WHERE subject != '';
ALTER TABLE nodes ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
`, postgresV3},
	{4, `
ALTER TABLE nodes ADD COLUMN key_lifetime_seconds INTEGER NOT NULL DEFAULT 0;
`, postgresV4},
	{5, `
ALTER TABLE users ADD COLUMN refresh_token TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN idp_checked_at INTEGER NOT NULL DEFAULT 0;
`, postgresV5},
	// 6: IDs and mesh addresses are never handed out twice (see nextID and
	// allocateIPv4). high_water holds the highest value ever given out,
	// seeded from what is in use and from the IDs audit events name (up
	// to ten digits, far from overflowing), so that "node:241" in the
	// audit log keeps meaning one node. And the
	// TOTP step last accepted, so a code is not accepted twice.
	{6, `
CREATE TABLE high_water (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO high_water (name, value) VALUES
	('users', (SELECT MAX(m) FROM (
		SELECT COALESCE(MAX(id), 0) AS m FROM users
		UNION ALL SELECT COALESCE(MAX(user_id), 0) FROM nodes
		UNION ALL SELECT COALESCE(MAX(CAST(substr(target, 6) AS INTEGER)), 0) FROM audit_events WHERE target GLOB 'user:[0-9]*' AND length(target) <= 15))),
	('nodes', (SELECT MAX(m) FROM (
		SELECT COALESCE(MAX(id), 0) AS m FROM nodes
		UNION ALL SELECT COALESCE(MAX(CAST(substr(target, 6) AS INTEGER)), 0) FROM audit_events WHERE target GLOB 'node:[0-9]*' AND length(target) <= 15))),
	('nodes.ipv4', (SELECT COALESCE(MAX(ipv4_num), 0) FROM nodes)),
	('auth_keys', (SELECT COALESCE(MAX(id), 0) FROM auth_keys)),
	('api_keys', (SELECT COALESCE(MAX(id), 0) FROM api_keys));
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
`, postgresV6},
	{7, `
-- Who created each pre-auth key; -1 for keys created before this
-- migration (their creator is unknown).
ALTER TABLE auth_keys ADD COLUMN creator_id INTEGER NOT NULL DEFAULT -1;
`, postgresV7},
	{8, `
-- 1: an admin named the node (nodes rename); its name no longer follows
-- its hostname.
ALTER TABLE nodes ADD COLUMN given_name INTEGER NOT NULL DEFAULT 0;
`, postgresV8},
	{9, `
-- The subnet and exit-node routes a node advertises, and those an admin
-- or the policy's autoApprovers approved (JSON arrays of prefixes); a
-- route is in force when it is in both.
ALTER TABLE nodes ADD COLUMN advertised_routes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE nodes ADD COLUMN approved_routes TEXT NOT NULL DEFAULT '[]';
`, postgresV9},
	{10, `
-- Device posture: each node's attributes (node: ones it reports, custom:
-- ones admins and integrations set). reported_at is the coordinator's
-- clock when the value was last reported or confirmed (freshness is
-- judged on it, never on the node's collected_at); expires_at (0: never)
-- is for set attributes. They go with their node.
CREATE TABLE node_attrs (
	node_id      INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	value        TEXT NOT NULL,
	source       TEXT NOT NULL,
	collected_at INTEGER NOT NULL DEFAULT 0,
	reported_at  INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (node_id, name)
);
-- An API key's role: '' acts as its owner; 'integration' may only read
-- nodes' attributes and set custom: ones (name says which job it is).
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
`, postgresV10},
	{11, `
-- Flow logs: one row per record a node reported (flow_id is the record's
-- stable ID: a record the same node delivers twice is stored once). node_id is the
-- node that reported it; src_node/dst_node and the users and tags are
-- what the coordinator resolved the addresses to when it stored the row
-- (0 and '' when unknown). Times are unix nanoseconds; end_time is the
-- last packet, on which time-range queries and retention work.
CREATE TABLE flows (
	id          INTEGER PRIMARY KEY,
	flow_id     TEXT NOT NULL,
	node_id     INTEGER NOT NULL,
	start_time  INTEGER NOT NULL,
	end_time    INTEGER NOT NULL,
	is_update   INTEGER NOT NULL DEFAULT 0,
	src         TEXT NOT NULL,
	src_port    INTEGER NOT NULL,
	dst         TEXT NOT NULL,
	dst_port    INTEGER NOT NULL,
	proto       INTEGER NOT NULL,
	src_node    INTEGER NOT NULL DEFAULT 0,
	src_user    TEXT NOT NULL DEFAULT '',
	src_tags    TEXT NOT NULL DEFAULT '[]',
	dst_node    INTEGER NOT NULL DEFAULT 0,
	dst_user    TEXT NOT NULL DEFAULT '',
	dst_tags    TEXT NOT NULL DEFAULT '[]',
	packets_in  INTEGER NOT NULL DEFAULT 0,
	bytes_in    INTEGER NOT NULL DEFAULT 0,
	packets_out INTEGER NOT NULL DEFAULT 0,
	bytes_out   INTEGER NOT NULL DEFAULT 0,
	verdict     TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	rule        TEXT NOT NULL DEFAULT '',
	count       INTEGER NOT NULL DEFAULT 0,
	-- A node's IDs are its own: one node cannot shadow another's records.
	UNIQUE (node_id, flow_id)
);
-- Three indexes serve the queries: by time, by user and by destination,
-- then time, carrying the columns the other filters test most (so they
-- filter without reading the rows). Every index costs the ingest, which
-- must keep up.
CREATE INDEX flows_time ON flows(end_time);
CREATE INDEX flows_src_user ON flows(src_user, end_time, dst_node, verdict);
CREATE INDEX flows_dst_node ON flows(dst_node, end_time, verdict, dst_port);
-- Audit queries by actor and target.
CREATE INDEX audit_actor ON audit_events(actor, time);
CREATE INDEX audit_target ON audit_events(target, time);
`, postgresV11},
	{12, `
-- How far each log sink (package export) has delivered each source: the
-- last row ID it delivered.
CREATE TABLE sink_cursors (
	sink   TEXT NOT NULL,
	source TEXT NOT NULL,
	cursor INTEGER NOT NULL,
	PRIMARY KEY (sink, source)
);
-- Audit IDs are never reused (they are the cursors): AppendAudit takes
-- them from high_water too.
INSERT INTO high_water (name, value) VALUES ('audit_events', (SELECT COALESCE(MAX(id), 0) FROM audit_events));
`, postgresV12},
	{13, `
-- Just-in-time access requests and their grants (package
-- coordinator/access). No foreign keys: the history outlives deleted
-- users and nodes, so login and node_name are kept as at filing.
-- Durations are nanoseconds, times unix nanoseconds (0: not yet).
CREATE TABLE access_requests (
	id           INTEGER PRIMARY KEY,
	node_id      INTEGER NOT NULL,
	node_name    TEXT NOT NULL DEFAULT '',
	user_id      INTEGER NOT NULL,
	login        TEXT NOT NULL DEFAULT '',
	dst          TEXT NOT NULL,
	rule         TEXT NOT NULL DEFAULT '',
	reason       TEXT NOT NULL DEFAULT '',
	requested_ns INTEGER NOT NULL,
	duration_ns  INTEGER NOT NULL,
	state        TEXT NOT NULL,
	break_glass  INTEGER NOT NULL DEFAULT 0,
	approver     TEXT NOT NULL DEFAULT '',
	note         TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	decided_at   INTEGER NOT NULL DEFAULT 0,
	expires_at   INTEGER NOT NULL DEFAULT 0,
	ended_at     INTEGER NOT NULL DEFAULT 0
);
-- Active grants by expiry, pending requests, and a user's requests.
CREATE INDEX access_state ON access_requests(state, expires_at);
CREATE INDEX access_user ON access_requests(user_id, id);
INSERT INTO high_water (name, value) VALUES ('access_requests', 0);
`, postgresV13},
	{14, `
-- The change feed between coordinator replicas sharing one database
-- (changes.go): every write other replicas must see appends a row here in
-- its own transaction. AUTOINCREMENT: IDs are never reused once pruned,
-- so an ID is a follower's cursor.
CREATE TABLE changes (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	origin TEXT NOT NULL,
	kind   TEXT NOT NULL,
	ref    INTEGER NOT NULL,
	at     INTEGER NOT NULL
);
CREATE INDEX changes_at ON changes(at);
-- Live replicas (heartbeat: unix nanoseconds) and which of them holds
-- each node's control channels.
CREATE TABLE replicas (
	id        TEXT PRIMARY KEY,
	heartbeat INTEGER NOT NULL
);
CREATE TABLE node_sessions (
	node_id INTEGER NOT NULL,
	replica TEXT NOT NULL,
	since   INTEGER NOT NULL,
	PRIMARY KEY (node_id, replica)
);
CREATE INDEX node_sessions_replica ON node_sessions(replica);
-- Leases: the jobs that must run on one replica at a time (holder) until
-- expires (unix nanoseconds), renewed while the holder lives.
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires INTEGER NOT NULL
);
`, postgresV14},
	{15, sshSessionsTable(`INTEGER`), sshSessionsTable(`BIGINT`)},
}

// sshSessionsTable is migration 15 with the dialect's integer type: the
// SSH sessions nodes report (ssh.go). No foreign keys: the history
// outlives deleted users and nodes, so names and logins are kept as they
// were at the start. id is the node-chosen session ID ("ssh-" and random
// hex); record_token is the SHA-256 (hex) of the coordinator's single-use
// recording token (empty when none is outstanding). Times are unix
// nanoseconds (0: not yet), duration nanoseconds, exit_code -1 when none.
// users.display_name is the identity provider's name for the user.
func sshSessionsTable(integer string) string {
	return strings.ReplaceAll(`
CREATE TABLE ssh_sessions (
	id           TEXT PRIMARY KEY,
	node_id      INT NOT NULL,
	node_name    TEXT NOT NULL DEFAULT '',
	src_node_id  INT NOT NULL,
	src_name     TEXT NOT NULL DEFAULT '',
	src_addr     TEXT NOT NULL DEFAULT '',
	user_id      INT NOT NULL DEFAULT 0,
	login        TEXT NOT NULL DEFAULT '',
	local_user   TEXT NOT NULL,
	rule         TEXT NOT NULL DEFAULT '',
	command      TEXT NOT NULL DEFAULT '',
	pty          INT NOT NULL DEFAULT 0,
	recorder     TEXT NOT NULL DEFAULT '',
	recording    TEXT NOT NULL DEFAULT '',
	unrecorded   INT NOT NULL DEFAULT 0,
	record_token TEXT NOT NULL DEFAULT '',
	started_at   INT NOT NULL,
	ended_at     INT NOT NULL DEFAULT 0,
	duration_ns  INT NOT NULL DEFAULT 0,
	exit_code    INT NOT NULL DEFAULT -1,
	reason       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ssh_sessions_started ON ssh_sessions(started_at);
CREATE INDEX ssh_sessions_login ON ssh_sessions(login, started_at);
-- The display name the identity provider gives a user, for whois and
-- identity headers.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
`, " INT ", " "+integer+" ")
}

// migrate applies pending migrations, each in its own transaction, and
// refuses a database newer than this code.
//
// On PostgreSQL every transaction takes the store's advisory write lock
// (see postgresStore.Tx), so replicas starting at once on one database
// apply each migration once, one after the other.
func (s *sqlStore) migrate(ctx context.Context) error {
	err := s.Tx(ctx, func(q Queries) error {
		_, err := q.(queries).q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var current int
	if err := s.queries.q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(current); err != nil {
		return err
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		applied := false
		err := s.Tx(ctx, func(q Queries) error {
			tx := q.(queries).q
			// Another process may have migrated since the read above; the
			// immediate transaction holds the write lock, so look again.
			var now int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&now); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if err := checkVersion(now); err != nil || now >= m.version {
				return err
			}
			// The driver runs every statement of a multi-statement string.
			text := m.sqlite
			if s.d == dialectPostgres {
				text = m.postgres
			}
			if _, err := tx.ExecContext(ctx, text); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.version, time.Now().UnixNano())
			applied = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("apply migration %d: %w", m.version, err)
		}
		if applied {
			s.log.Info("database migrated", "version", m.version)
		}
	}
	return nil
}

// checkVersion refuses a database migrated by a newer coordinator: this
// code cannot know what the newer schema means.
func checkVersion(current int) error {
	latest := migrations[len(migrations)-1].version
	if current > latest {
		return fmt.Errorf("database schema version %d is newer than this coordinator (%d); upgrade warren-coordinator", current, latest)
	}
	return nil
}
