package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// NodePageFilter selects one page of nodes, ordered by name (then ID),
// for listings too long to read whole (the web console's nodes page).
type NodePageFilter struct {
	// Match, when not empty, keeps the nodes whose name, hostname or
	// owner's login contains it, that have it as a tag, or whose IPv4 or
	// IPv6 address it is.
	Match string
	// User, when not 0, keeps that user's nodes only.
	User UserID
	// Offset skips that many matching nodes; Limit bounds the page (0:
	// 100; at most 1000).
	Offset, Limit int
}

// Bounds of ListNodePage.
const (
	defaultNodePage = 100
	maxNodePage     = 1000
)

// nodePageWhere is the condition of a NodePageFilter: arguments match (7
// times, then the tag as JSON) and user (twice).
func nodePageWhere(d dialect) string {
	return strings.ReplaceAll(`(? = '' OR instr(name, ?) > 0 OR instr(hostname, ?) > 0 OR ipv4 = ? OR ipv6 = ?
	OR user_id IN (SELECT id FROM users WHERE ? <> '' AND instr(name, ?) > 0) OR instr(tags, ?) > 0)
	AND (? = 0 OR user_id = ?)`, "instr(", d.strpos()+"(")
}

// ListNodePage is a read: it goes to the read-only pool.
func (s *sqlStore) ListNodePage(ctx context.Context, f NodePageFilter) ([]Node, int, error) {
	return s.r.ListNodePage(ctx, f)
}

// ListNodePage returns the page of nodes f selects and how many match in
// all (two statements: a change between them can make the count differ
// from the pages by that change).
func (q queries) ListNodePage(ctx context.Context, f NodePageFilter) ([]Node, int, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultNodePage
	}
	limit = min(limit, maxNodePage)
	tag, err := json.Marshal(f.Match) // a tag as it appears in the tags column
	if err != nil {
		return nil, 0, err
	}
	args := []any{f.Match, f.Match, f.Match, f.Match, f.Match, f.Match, f.Match, string(tag), f.User, f.User}
	where := nodePageWhere(q.d)
	var total int
	if err := q.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes WHERE `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count nodes: %w", wrapErr(err))
	}
	nodes, err := list(ctx, q, "nodes", `SELECT `+nodeCols+` FROM nodes WHERE `+where+` ORDER BY name, id LIMIT ? OFFSET ?`,
		scanNode, append(args, limit, max(f.Offset, 0))...)
	return nodes, total, err
}
