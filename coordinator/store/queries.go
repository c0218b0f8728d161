package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// Value conversions between Go and SQLite columns.

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func jsonText[T any](v []T) string {
	if len(v) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func fromJSON[T any](s string, what string) ([]T, error) {
	var v []T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("stored %s: %w", what, err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

// lifetimeSeconds is Node.KeyLifetime as stored: whole seconds, 0 for the
// default, -1 for never.
func lifetimeSeconds(d time.Duration) int64 {
	if d < 0 {
		return -1
	}
	return int64(d / time.Second)
}

func fromLifetimeSeconds(s int64) time.Duration {
	if s < 0 {
		return KeyLifetimeNever
	}
	return time.Duration(s) * time.Second
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Users.

const userCols = `id, name, email, groups, role, disabled, created, issuer, subject, mfa_at, password_hash, totp_secret, refresh_token, idp_checked_at, totp_last_step, display_name`

// scanUser reads a row of userCols and opens its sealed fields.
func (q queries) scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var groups, role string
	var created, mfaAt, checked int64
	if err := row.Scan(&u.ID, &u.Name, &u.Email, &groups, &role, &u.Disabled, &created,
		&u.Issuer, &u.Subject, &mfaAt, &u.PasswordHash, &u.TOTPSecret, &u.RefreshToken, &checked, &u.TOTPLastStep, &u.DisplayName); err != nil {
		return u, wrapErr(err)
	}
	u.Role, u.Created, u.MFAAt, u.IdPCheckedAt = Role(role), fromNanos(created), fromNanos(mfaAt), fromNanos(checked)
	var err error
	if u.Groups, err = fromJSON[string](groups, "groups"); err != nil {
		return u, err
	}
	return u, q.openUser(&u)
}

// CreateUser inserts u. Its ID is one above every user ID ever handed out
// (see nextID), including the UserID kept on tagged nodes of deleted
// users: SQLite would otherwise hand a deleted user's ID to the next user,
// who would then own those nodes.
func (q queries) CreateUser(ctx context.Context, u User) (User, error) {
	id, err := q.nextID(ctx, "users")
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	totp, refresh, err := q.sealUser(UserID(id), u)
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO users (id, name, email, groups, role, disabled, created,
		issuer, subject, mfa_at, password_hash, totp_secret, refresh_token, idp_checked_at, totp_last_step, display_name)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, u.Name, u.Email, jsonText(u.Groups), string(u.Role), u.Disabled, nanos(u.Created),
		u.Issuer, u.Subject, nanos(u.MFAAt), u.PasswordHash, totp, refresh, nanos(u.IdPCheckedAt), u.TOTPLastStep, u.DisplayName)
	if err != nil {
		return User{}, fmt.Errorf("create user %q: %w", u.Name, wrapErr(err))
	}
	if err := q.appendChange(ctx, ChangeUser, id); err != nil {
		return User{}, err
	}
	return q.GetUser(ctx, UserID(id))
}

func (q queries) GetUser(ctx context.Context, id UserID) (User, error) {
	u, err := q.scanUser(q.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, fmt.Errorf("user %d: %w", id, err)
	}
	return u, nil
}

func (q queries) GetUserByName(ctx context.Context, name string) (User, error) {
	u, err := q.scanUser(q.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if err != nil {
		return u, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

func (q queries) GetUserByIdentity(ctx context.Context, issuer, subject string) (User, error) {
	if subject == "" {
		return User{}, fmt.Errorf("user with an empty subject: %w", ErrNotFound)
	}
	u, err := q.scanUser(q.q.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE issuer = ? AND subject = ?`, issuer, subject))
	if err != nil {
		return u, fmt.Errorf("user %s at %s: %w", subject, issuer, err)
	}
	return u, nil
}

func (q queries) ListUsers(ctx context.Context) ([]User, error) {
	return list(ctx, q, "users", `SELECT `+userCols+` FROM users ORDER BY id`, q.scanUser)
}

func (q queries) UpdateUser(ctx context.Context, u User) error {
	totp, refresh, err := q.sealUser(u.ID, u)
	if err != nil {
		return fmt.Errorf("update user %d: %w", u.ID, err)
	}
	err = q.execOne(ctx, fmt.Sprintf("update user %d", u.ID),
		`UPDATE users SET name = ?, email = ?, groups = ?, role = ?, disabled = ?, issuer = ?, subject = ?,
		mfa_at = ?, password_hash = ?, totp_secret = ?, refresh_token = ?, idp_checked_at = ?, totp_last_step = ?, display_name = ? WHERE id = ?`,
		u.Name, u.Email, jsonText(u.Groups), string(u.Role), u.Disabled, u.Issuer, u.Subject,
		nanos(u.MFAAt), u.PasswordHash, totp, refresh, nanos(u.IdPCheckedAt), u.TOTPLastStep, u.DisplayName, u.ID)
	if err != nil {
		return err
	}
	return q.appendChange(ctx, ChangeUser, int64(u.ID))
}

func (q queries) DeleteUser(ctx context.Context, id UserID) error {
	if _, err := q.GetUser(ctx, id); err != nil {
		return err
	}
	// User-owned nodes go; tagged nodes the user registered stay. Keys go
	// with the user (ON DELETE CASCADE).
	gone, err := list(ctx, q, "nodes", `SELECT id FROM nodes WHERE user_id = ? AND tags = '[]'`, scanValue[int64], id)
	if err != nil {
		return fmt.Errorf("delete nodes of user %d: %w", id, err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM nodes WHERE user_id = ? AND tags = '[]'`, id); err != nil {
		return fmt.Errorf("delete nodes of user %d: %w", id, err)
	}
	for _, n := range gone {
		if err := q.appendChange(ctx, ChangeNode, n); err != nil {
			return err
		}
	}
	if err := q.execOne(ctx, fmt.Sprintf("delete user %d", id), `DELETE FROM users WHERE id = ?`, id); err != nil {
		return err
	}
	return q.appendChange(ctx, ChangeUser, int64(id))
}

// scanValue scans a row of one column, for list.
func scanValue[T any](row interface{ Scan(...any) error }) (T, error) {
	var v T
	err := row.Scan(&v)
	return v, err
}

// list runs a query and scans every row.
func list[T any](ctx context.Context, q queries, what, query string, scan func(interface{ Scan(...any) error }) (T, error), args ...any) ([]T, error) {
	rows, err := q.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// Nodes.

const nodeCols = `id, machine_key, node_key, disco_key, user_id, tags, ipv4, ipv6, hostname, name, created, last_seen, key_expiry, endpoints, home_relay, ephemeral, auth_key_id, pending, key_lifetime_seconds, given_name, advertised_routes, approved_routes`

func scanNode(row interface{ Scan(...any) error }) (Node, error) {
	var n Node
	var mk, nk, dk, tags, v4, v6, eps, advertised, approved string
	var created, seen, expiry, lifetime int64
	if err := row.Scan(&n.ID, &mk, &nk, &dk, &n.UserID, &tags, &v4, &v6, &n.Hostname, &n.Name, &created, &seen, &expiry,
		&eps, &n.HomeRelay, &n.Ephemeral, &n.AuthKeyID, &n.Pending, &lifetime, &n.GivenName, &advertised, &approved); err != nil {
		return n, wrapErr(err)
	}
	n.Created, n.LastSeen, n.KeyExpiry = fromNanos(created), fromNanos(seen), fromNanos(expiry)
	n.KeyLifetime = fromLifetimeSeconds(lifetime)
	errs := []error{n.MachineKey.UnmarshalText([]byte(mk)), n.NodeKey.UnmarshalText([]byte(nk)), n.DiscoKey.UnmarshalText([]byte(dk))}
	var err error
	n.IPv4, err = netip.ParseAddr(v4)
	errs = append(errs, err)
	n.IPv6, err = netip.ParseAddr(v6)
	errs = append(errs, err)
	n.Tags, err = fromJSON[string](tags, "tags")
	errs = append(errs, err)
	n.Endpoints, err = fromJSON[netip.AddrPort](eps, "endpoints")
	errs = append(errs, err)
	n.AdvertisedRoutes, err = fromJSON[netip.Prefix](advertised, "advertised routes")
	errs = append(errs, err)
	n.ApprovedRoutes, err = fromJSON[netip.Prefix](approved, "approved routes")
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("node %d: corrupt row: %w", n.ID, err)
	}
	return n, nil
}

func (q queries) getNodeBy(ctx context.Context, col string, v any) (Node, error) {
	n, err := scanNode(q.q.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE `+col+` = ?`, v))
	if err != nil {
		return n, fmt.Errorf("node with %s %v: %w", col, v, err)
	}
	return n, nil
}

func (q queries) GetNode(ctx context.Context, id NodeID) (Node, error) {
	return q.getNodeBy(ctx, "id", id)
}

func (q queries) GetNodeByMachineKey(ctx context.Context, k key.MachinePublic) (Node, error) {
	return q.getNodeBy(ctx, "machine_key", k.String())
}

func (q queries) GetNodeByNodeKey(ctx context.Context, k key.NodePublic) (Node, error) {
	return q.getNodeBy(ctx, "node_key", k.String())
}

func (q queries) ListNodes(ctx context.Context) ([]Node, error) {
	return list(ctx, q, "nodes", `SELECT `+nodeCols+` FROM nodes ORDER BY id`, scanNode)
}

func (q queries) CreateNode(ctx context.Context, n Node) (Node, error) {
	if !n.IPv4.IsValid() {
		v4, err := q.allocateIPv4(ctx)
		if err != nil {
			return Node{}, err
		}
		n.IPv4 = v4
	}
	if !n.IPv4.Is4() || !IPv4Range.Contains(n.IPv4) {
		return Node{}, fmt.Errorf("create node: address %v outside %v", n.IPv4, IPv4Range)
	}
	if num := v4num(n.IPv4); num < v4First || num == v4Reserved {
		return Node{}, fmt.Errorf("create node: address %v is reserved", n.IPv4)
	}
	if !n.IPv6.IsValid() {
		n.IPv6 = IPv6For(n.IPv4)
	}
	if !n.IPv6.Is6() || n.IPv6.Is4In6() || !IPv6Range.Contains(n.IPv6) {
		return Node{}, fmt.Errorf("create node: address %v outside %v", n.IPv6, IPv6Range)
	}
	if n.MachineKey.IsZero() || n.NodeKey.IsZero() {
		return Node{}, fmt.Errorf("create node %q: machine and node keys are required", n.Hostname)
	}
	name, err := q.uniqueName(ctx, n.Hostname, 0)
	if err != nil {
		return Node{}, err
	}
	id, err := q.nextID(ctx, "nodes")
	if err != nil {
		return Node{}, fmt.Errorf("create node %q: %w", n.Hostname, err)
	}
	if err := q.raiseHighWater(ctx, "nodes.ipv4", v4num(n.IPv4)); err != nil {
		return Node{}, fmt.Errorf("create node %q: %w", n.Hostname, err)
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO nodes (id, machine_key, node_key, disco_key, user_id, tags, ipv4, ipv4_num, ipv6,
		hostname, name, created, last_seen, key_expiry, endpoints, home_relay, ephemeral, auth_key_id, pending, key_lifetime_seconds,
		advertised_routes, approved_routes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, n.MachineKey.String(), n.NodeKey.String(), n.DiscoKey.String(), n.UserID, jsonText(n.Tags), n.IPv4.String(), v4num(n.IPv4),
		n.IPv6.String(), n.Hostname, name, nanos(n.Created), nanos(n.LastSeen), nanos(n.KeyExpiry), jsonText(n.Endpoints),
		n.HomeRelay, boolInt(n.Ephemeral), n.AuthKeyID, boolInt(n.Pending), lifetimeSeconds(n.KeyLifetime),
		jsonText(n.AdvertisedRoutes), jsonText(n.ApprovedRoutes))
	if err != nil {
		return Node{}, fmt.Errorf("create node %q: %w", n.Hostname, wrapErr(err))
	}
	if err := q.appendChange(ctx, ChangeNode, id); err != nil {
		return Node{}, err
	}
	return q.GetNode(ctx, NodeID(id))
}

func (q queries) UpdateNode(ctx context.Context, n Node) (Node, error) {
	old, err := q.GetNode(ctx, n.ID)
	if err != nil {
		return Node{}, err
	}
	name := old.Name
	switch {
	case n.GivenName:
		if !ValidNodeName(n.Name) {
			return Node{}, fmt.Errorf("update node %d: %q is not a DNS label", n.ID, n.Name)
		}
		name = n.Name
	case n.Hostname != old.Hostname || old.GivenName:
		if name, err = q.uniqueName(ctx, n.Hostname, n.ID); err != nil {
			return Node{}, err
		}
	}
	err = q.execOne(ctx, fmt.Sprintf("update node %d", n.ID), `UPDATE nodes SET machine_key = ?, node_key = ?, disco_key = ?,
		user_id = ?, tags = ?, hostname = ?, name = ?, last_seen = ?, key_expiry = ?, endpoints = ?, home_relay = ?,
		ephemeral = ?, auth_key_id = ?, pending = ?, key_lifetime_seconds = ?, given_name = ?,
		advertised_routes = ?, approved_routes = ? WHERE id = ?`,
		n.MachineKey.String(), n.NodeKey.String(), n.DiscoKey.String(), n.UserID, jsonText(n.Tags), n.Hostname, name,
		nanos(n.LastSeen), nanos(n.KeyExpiry), jsonText(n.Endpoints), n.HomeRelay, boolInt(n.Ephemeral), n.AuthKeyID,
		boolInt(n.Pending), lifetimeSeconds(n.KeyLifetime), boolInt(n.GivenName),
		jsonText(n.AdvertisedRoutes), jsonText(n.ApprovedRoutes), n.ID)
	if err != nil {
		return Node{}, err
	}
	if err := q.appendChange(ctx, ChangeNode, int64(n.ID)); err != nil {
		return Node{}, err
	}
	return q.GetNode(ctx, n.ID)
}

func (q queries) DeleteNode(ctx context.Context, id NodeID) error {
	if err := q.execOne(ctx, fmt.Sprintf("delete node %d", id), `DELETE FROM nodes WHERE id = ?`, id); err != nil {
		return err
	}
	return q.appendChange(ctx, ChangeNode, int64(id))
}

// uniqueName derives a DNS label from hostname that no node but self uses:
// DNSLabel(hostname), or that with "-2", "-3", … appended (the label cut
// short to keep within 63 characters).
//
// Every candidate starts with the label cut to maxLabel-maxSuffix, so one
// indexed prefix query reads all the names that could clash.
func (q queries) uniqueName(ctx context.Context, hostname string, self NodeID) (string, error) {
	base := DNSLabel(hostname)
	prefix := trimLabel(base[:min(len(base), maxLabel-maxSuffix)])
	match, arg := q.d.prefixMatch("name", prefix)
	rows, err := q.q.QueryContext(ctx, `SELECT name FROM nodes WHERE `+match+` AND id != ?`, arg, self)
	if err != nil {
		return "", fmt.Errorf("name node %q: %w", hostname, err)
	}
	defer rows.Close()
	taken := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return "", fmt.Errorf("name node %q: %w", hostname, err)
		}
		taken[name] = true
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("name node %q: %w", hostname, err)
	}
	// At most len(taken) candidates are taken, so this ends within
	// len(taken)+1 tries, long before a suffix outgrows maxSuffix.
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			suffix := "-" + strconv.Itoa(i)
			name = trimLabel(base[:min(len(base), maxLabel-len(suffix))]) + suffix
		}
		if !taken[name] {
			return name, nil
		}
	}
}

// maxSuffix is the longest "-N" suffix uniqueName can need: N is at most
// one more than the number of nodes, which the address space keeps below
// 2^22.
const maxSuffix = len("-9999999")

// Mesh addresses.

var (
	v4First    = v4num(IPv4Range.Addr()) + 1 // skip the network address
	v4Last     = v4First - 1 + (1 << (32 - IPv4Range.Bits())) - 1
	v4Reserved = v4num(netip.MustParseAddr("100.100.100.100")) // the mesh DNS resolver
)

func v4num(a netip.Addr) int64 {
	b := a.As4()
	return int64(binary.BigEndian.Uint32(b[:]))
}

func v4addr(n int64) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n))
	return netip.AddrFrom4(b)
}

// IPv6For returns the IPv6 mesh address paired with a node's IPv4 one: the
// IPv6 range with the IPv4 address as its last 32 bits.
func IPv6For(v4 netip.Addr) netip.Addr {
	b := IPv6Range.Addr().As16()
	a := v4.As4()
	copy(b[12:], a[:])
	return netip.AddrFrom16(b)
}

// allocateIPv4 returns the address above the highest ever handed out (in
// use or deleted, see highWater), so a deleted node's address does not
// pass to another node while peers may still know it by that address.
// Only once the top of the range is reached does it reuse addresses: the
// lowest free gap.
func (q queries) allocateIPv4(ctx context.Context) (netip.Addr, error) {
	highest, err := q.highWater(ctx, "nodes.ipv4")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
	}
	next := max(highest+1, v4First)
	if next == v4Reserved {
		next++
	}
	if next <= v4Last {
		return v4addr(next), nil
	}
	rows, err := q.q.QueryContext(ctx, `SELECT ipv4_num FROM nodes ORDER BY ipv4_num`)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
	}
	defer rows.Close()
	candidate := v4First
	for rows.Next() {
		var used int64
		if err := rows.Scan(&used); err != nil {
			return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
		}
		if candidate == v4Reserved {
			candidate++
		}
		if used > candidate {
			break // gap found
		}
		candidate = max(candidate, used+1)
	}
	if err := rows.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("allocate address: %w", err)
	}
	if candidate == v4Reserved {
		candidate++
	}
	if candidate > v4Last {
		return netip.Addr{}, ErrAddressSpaceFull
	}
	return v4addr(candidate), nil
}
