package access

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// who is a caller resolved as it is now.
type who struct {
	actor  string // the audit actor: "user:ann@example.com", "node:12", "local:uid=0"
	user   store.User
	hasUsr bool // user is set: an untagged node's owner, or an API key's owner
	admin  bool // an admin acting through the admin API or socket
	node   store.Node
	isNode bool
}

// resolve looks c up as it is now: a node caller's node and owner from
// the store, an admin caller's user (if any).
func (s *Service) resolve(ctx context.Context, c Caller) (who, error) {
	if c.Node != 0 {
		n, err := s.cfg.Store.GetNode(ctx, c.Node)
		if err != nil {
			return who{}, lookupError(err, "your device is not registered")
		}
		w := who{node: n, isNode: true, actor: fmt.Sprintf("node:%d", n.ID)}
		if n.Tagged() {
			return w, nil
		}
		u, err := s.cfg.Store.GetUser(ctx, n.UserID)
		if err != nil {
			return who{}, lookupError(err, "your device's owner is not registered")
		}
		if u.Disabled {
			return who{}, &Error{Code: wire.AccessForbidden, Message: "your account is disabled"}
		}
		w.user, w.hasUsr, w.actor = u, true, "user:"+u.Name
		return w, nil
	}
	a := c.Actor
	if a.Name == "" || a.Integration != "" {
		return who{}, &Error{Code: wire.AccessForbidden, Message: "this credential may not act on access requests"}
	}
	w := who{actor: a.Name, admin: a.Admin}
	if a.UserID != 0 {
		u, err := s.cfg.Store.GetUser(ctx, a.UserID)
		if err != nil {
			return who{}, lookupError(err, "your account is not registered")
		}
		if u.Disabled {
			return who{}, &Error{Code: wire.AccessForbidden, Message: "your account is disabled"}
		}
		w.user, w.hasUsr = u, true
	}
	if !w.admin && !w.hasUsr {
		return who{}, &Error{Code: wire.AccessForbidden, Message: "this credential may not act on access requests"}
	}
	return w, nil
}

// owns reports whether w filed r (their own user, or for a tagged
// device, the device itself).
func (w who) owns(r store.AccessRequest) bool {
	if w.hasUsr && w.user.ID == r.UserID && r.Login != "" {
		return true
	}
	return w.isNode && w.node.ID == r.NodeID
}

func lookupError(err error, what string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Code: wire.AccessForbidden, Message: what}
	}
	return err
}

// requestID is a request's shown ID: "ar-12".
func requestID(id int64) string { return "ar-" + strconv.FormatInt(id, 10) }

// parseID reads "ar-12" (or "12").
func parseID(s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(s), "ar-"), 10, 64)
	if err != nil || n <= 0 {
		return 0, &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("%q is not a request ID (ar-12)", s)}
	}
	return n, nil
}

// ToWire is a stored request as every interface shows it.
func ToWire(r store.AccessRequest) wire.AccessRequest {
	return wire.AccessRequest{ID: requestID(r.ID), Node: wire.NodeID(r.NodeID), NodeName: r.NodeName, User: r.Login,
		Dst: r.Dst, Rule: r.Rule, Reason: r.Reason, Duration: r.Duration, State: r.State, BreakGlass: r.BreakGlass,
		Approver: r.Approver, Note: r.Note, Created: r.Created, Decided: r.Decided, Expires: r.Expires, Ended: r.Ended}
}

// event is r's audit event: target "access:ar-12", the detail every
// access event carries, plus extra.
func event(actor, action string, r store.AccessRequest, extra map[string]any) audit.Event {
	d := map[string]any{
		"id": requestID(r.ID), "requester": requester(r), "node": int64(r.NodeID), "nodeName": r.NodeName,
		"destination": r.Dst, "duration": r.Duration.String(), "rule": r.Rule, "state": r.State,
	}
	if r.Reason != "" {
		d["reason"] = r.Reason
	}
	if r.Approver != "" {
		d["approver"] = r.Approver
	}
	if r.Note != "" {
		d["note"] = r.Note
	}
	if r.BreakGlass {
		d["breakGlass"] = true
	}
	if !r.Expires.IsZero() {
		d["expires"] = r.Expires.UTC().Format(time.RFC3339)
	}
	for k, v := range extra {
		d[k] = v
	}
	return audit.Event{Actor: actor, Action: action, Target: "access:" + requestID(r.ID), Outcome: audit.OK, Detail: d}
}

// requester names who filed r: their login, or for a tagged device its
// name.
func requester(r store.AccessRequest) string {
	if r.Login != "" {
		return r.Login
	}
	return "node " + r.NodeName
}
