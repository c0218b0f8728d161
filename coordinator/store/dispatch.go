package store

import (
	"context"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

// The Store's own methods. The embedded queries run on the writer (so a
// write method added to Queries goes to the writer without more code);
// plain reads are sent to the read-only pool here, and writes of several
// statements run as one transaction.

func writeGet[T any](ctx context.Context, s *sqlStore, fn func(q Queries) (T, error)) (out T, err error) {
	err = s.Tx(ctx, func(q Queries) error { out, err = fn(q); return err })
	return out, err
}

// The creations below take an ID from high_water (see nextID) and insert
// the row: two statements, one transaction.

func (s *sqlStore) CreateUser(ctx context.Context, u User) (User, error) {
	return writeGet(ctx, s, func(q Queries) (User, error) { return q.CreateUser(ctx, u) })
}

func (s *sqlStore) CreateAuthKey(ctx context.Context, k AuthKey) (AuthKey, error) {
	return writeGet(ctx, s, func(q Queries) (AuthKey, error) { return q.CreateAuthKey(ctx, k) })
}

func (s *sqlStore) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	return writeGet(ctx, s, func(q Queries) (APIKey, error) { return q.CreateAPIKey(ctx, k) })
}

func (s *sqlStore) GetUser(ctx context.Context, id UserID) (User, error) {
	return s.r.GetUser(ctx, id)
}

func (s *sqlStore) GetUserByName(ctx context.Context, name string) (User, error) {
	return s.r.GetUserByName(ctx, name)
}

func (s *sqlStore) GetUserByIdentity(ctx context.Context, issuer, subject string) (User, error) {
	return s.r.GetUserByIdentity(ctx, issuer, subject)
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) { return s.r.ListUsers(ctx) }

func (s *sqlStore) DeleteUser(ctx context.Context, id UserID) error {
	return s.Tx(ctx, func(q Queries) error { return q.DeleteUser(ctx, id) })
}

func (s *sqlStore) CreateNode(ctx context.Context, n Node) (Node, error) {
	return writeGet(ctx, s, func(q Queries) (Node, error) { return q.CreateNode(ctx, n) })
}

func (s *sqlStore) GetNode(ctx context.Context, id NodeID) (Node, error) {
	return s.r.GetNode(ctx, id)
}

func (s *sqlStore) GetNodeByMachineKey(ctx context.Context, k key.MachinePublic) (Node, error) {
	return s.r.GetNodeByMachineKey(ctx, k)
}

func (s *sqlStore) GetNodeByNodeKey(ctx context.Context, k key.NodePublic) (Node, error) {
	return s.r.GetNodeByNodeKey(ctx, k)
}

func (s *sqlStore) ListNodes(ctx context.Context) ([]Node, error) { return s.r.ListNodes(ctx) }

func (s *sqlStore) UpdateNode(ctx context.Context, n Node) (Node, error) {
	return writeGet(ctx, s, func(q Queries) (Node, error) { return q.UpdateNode(ctx, n) })
}

func (s *sqlStore) GetAuthKey(ctx context.Context, id AuthKeyID) (AuthKey, error) {
	return s.r.GetAuthKey(ctx, id)
}

func (s *sqlStore) GetAuthKeyByHash(ctx context.Context, hash []byte) (AuthKey, error) {
	return s.r.GetAuthKeyByHash(ctx, hash)
}

func (s *sqlStore) ListAuthKeys(ctx context.Context) ([]AuthKey, error) {
	return s.r.ListAuthKeys(ctx)
}

func (s *sqlStore) GetAPIKey(ctx context.Context, id APIKeyID) (APIKey, error) {
	return s.r.GetAPIKey(ctx, id)
}

func (s *sqlStore) GetAPIKeyByHash(ctx context.Context, hash []byte) (APIKey, error) {
	return s.r.GetAPIKeyByHash(ctx, hash)
}

func (s *sqlStore) ListAPIKeys(ctx context.Context) ([]APIKey, error) { return s.r.ListAPIKeys(ctx) }

func (s *sqlStore) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	return s.r.ListAudit(ctx, f)
}

// AppendAudit takes the event's ID from high_water and inserts it.
func (s *sqlStore) AppendAudit(ctx context.Context, e AuditEvent) error {
	return s.Tx(ctx, func(q Queries) error { return q.AppendAudit(ctx, e) })
}

func (s *sqlStore) ListAuditAfter(ctx context.Context, after int64, n int) ([]AuditEvent, error) {
	return s.r.ListAuditAfter(ctx, after, n)
}

func (s *sqlStore) CountAuditAfter(ctx context.Context, after int64) (int64, error) {
	return s.r.CountAuditAfter(ctx, after)
}

func (s *sqlStore) SinkCursor(ctx context.Context, sink, source string) (int64, error) {
	return s.r.SinkCursor(ctx, sink, source)
}

func (s *sqlStore) LatestPolicy(ctx context.Context) (PolicyVersion, error) {
	return s.r.LatestPolicy(ctx)
}

func (s *sqlStore) ListPolicies(ctx context.Context, limit int) ([]PolicyVersion, error) {
	return s.r.ListPolicies(ctx, limit)
}

func (s *sqlStore) ListNodeAttrs(ctx context.Context, id NodeID) ([]NodeAttr, error) {
	return s.r.ListNodeAttrs(ctx, id)
}

func (s *sqlStore) ListAllNodeAttrs(ctx context.Context) ([]NodeAttr, error) {
	return s.r.ListAllNodeAttrs(ctx)
}

func (s *sqlStore) ListFlows(ctx context.Context, f FlowFilter) ([]Flow, error) {
	return s.r.ListFlows(ctx, f)
}

func (s *sqlStore) ListFlowsAfter(ctx context.Context, after int64, n int) ([]Flow, error) {
	return s.r.ListFlowsAfter(ctx, after, n)
}

func (s *sqlStore) CountFlowsAfter(ctx context.Context, after int64) (int64, error) {
	return s.r.CountFlowsAfter(ctx, after)
}

func (s *sqlStore) HourBaseline(ctx context.Context, dst NodeID, hour int, from, to time.Time) (int64, int64, error) {
	return s.r.HourBaseline(ctx, dst, hour, from, to)
}

func (s *sqlStore) DeniedBySource(ctx context.Context, since time.Time) (map[string]int64, error) {
	return s.r.DeniedBySource(ctx, since)
}

func (s *sqlStore) InsertFlows(ctx context.Context, flows []Flow) (int64, error) {
	return writeGet(ctx, s, func(q Queries) (int64, error) { return q.InsertFlows(ctx, flows) })
}
