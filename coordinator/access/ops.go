package access

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/warrenmesh/warren/coordinator/alert"
	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// Request files a request for dst for d with reason. Under a rule with
// "mfa" older than the requester's last MFA it fails with Code
// wire.AccessMFARequired; under a selfApprove rule it is granted at once
// (break-glass).
func (s *Service) Request(ctx context.Context, c Caller, dst string, d time.Duration, reason string) (wire.AccessRequest, error) {
	w, err := s.resolve(ctx, c)
	if err != nil {
		return wire.AccessRequest{}, err
	}
	r, err := s.request(ctx, w, dst, d, reason)
	if err != nil {
		s.refused(ctx, w.actor, "access.request", "node:"+fmt.Sprint(w.node.ID), map[string]any{
			"destination": clip(dst, MaxDst), "duration": d.String(), "reason": clip(reason, MaxReason)}, err)
		return wire.AccessRequest{}, err
	}
	return ToWire(r), nil
}

func (s *Service) request(ctx context.Context, w who, dst string, d time.Duration, reason string) (store.AccessRequest, error) {
	if !w.isNode {
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: "file a request from the device that needs the access (warren access request)"}
	}
	dst, reason = strings.TrimSpace(dst), strings.TrimSpace(reason)
	switch {
	case dst == "" || len(dst) > MaxDst:
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("give a destination of at most %d characters, e.g. tag:prod-db:5432", MaxDst)}
	case !utf8.ValidString(dst) || !utf8.ValidString(reason):
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: "the destination and reason must be UTF-8 text"}
	case len(reason) > MaxReason:
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("the reason is longer than %d characters", MaxReason)}
	case d <= 0:
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: "give a duration above zero (--for 2h)"}
	}
	n, ok := s.cfg.Engine.Node(wire.NodeID(w.node.ID))
	if !ok {
		return store.AccessRequest{}, &Error{Code: wire.AccessForbidden, Message: "your device is not in the mesh (is it waiting for approval?)"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rule, err := s.cfg.Policy().MatchAccess(policyNode(n), dst)
	if err != nil {
		return store.AccessRequest{}, matchError(err, dst)
	}
	switch {
	case d > rule.MaxDuration:
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("%s is longer than %s allows (maxDuration %s)", fmtDur(d), rule.Ref, fmtDur(rule.MaxDuration))}
	case rule.ReasonRequired && reason == "":
		return store.AccessRequest{}, &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("%s requires a reason (--reason \"INC-4211\")", rule.Ref)}
	}
	now := s.now()
	if rule.MFA > 0 {
		if !w.hasUsr {
			return store.AccessRequest{}, &Error{Code: wire.AccessForbidden, Message: fmt.Sprintf("%s requires fresh MFA, which a tagged device cannot give", rule.Ref)}
		}
		if w.user.MFAAt.IsZero() || now.Sub(w.user.MFAAt) > rule.MFA {
			return store.AccessRequest{}, &Error{Code: wire.AccessMFARequired, MFAMaxAge: rule.MFA,
				Message: fmt.Sprintf("%s requires a sign-in with a second factor within the last %s", rule.Ref, fmtDur(rule.MFA))}
		}
	}
	r := store.AccessRequest{NodeID: w.node.ID, NodeName: w.node.Name, UserID: w.node.UserID, Login: w.user.Name, Dst: dst,
		Rule: rule.Ref, Reason: reason, Requested: d, Duration: d, State: wire.AccessPending, Created: now}
	if rule.SelfApprove {
		r.State, r.BreakGlass, r.Approver, r.Decided, r.Expires = wire.AccessActive, true, w.actor, now, now.Add(d)
	}
	err = s.cfg.Audit.Commit(ctx, func(tx *audit.Tx) error {
		if !rule.SelfApprove {
			pending, err := tx.ListAccessRequests(ctx, store.AccessFilter{States: []string{wire.AccessPending}, User: r.UserID, Node: nodeIfTagged(w), Limit: s.cfg.MaxPending})
			if err != nil {
				return err
			}
			if len(pending) >= s.cfg.MaxPending {
				return &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("you have %d pending requests; cancel one first (warren access cancel ID)", len(pending))}
			}
		}
		var err error
		if r, err = tx.CreateAccessRequest(ctx, r); err != nil {
			return err
		}
		tx.Record(event(w.actor, "access.request", r, map[string]any{"text": requestText(r)}))
		if rule.SelfApprove {
			text := fmt.Sprintf("BREAK-GLASS: %s granted themselves %s for %s on %s (%s) under %s", requester(r), r.Dst, fmtDur(d), r.NodeName, orNone(r.Reason), r.Rule)
			tx.Record(event(w.actor, "access.break-glass", r, map[string]any{"text": text}))
			tx.Record(audit.Event{Actor: w.actor, Action: alert.ActionPrefix + "break-glass", Target: "access:" + requestID(r.ID), Outcome: audit.OK,
				Detail: map[string]any{"rule": "break-glass", "text": text, "id": requestID(r.ID), "requester": requester(r),
					"node": int64(r.NodeID), "nodeName": r.NodeName, "destination": r.Dst, "duration": d.String(), "reason": r.Reason, "accessRule": r.Rule}})
			tx.Record(event(w.actor, "access.grant", r, nil))
		}
		return nil
	})
	if err != nil {
		return store.AccessRequest{}, err
	}
	if r.State == wire.AccessActive {
		return s.putInForce(ctx, r)
	}
	return r, nil
}

// putInForce hands active r's grant to the engine; if the engine refuses
// it, r ends (access.revoke) and the error is returned. s.mu is held.
func (s *Service) putInForce(ctx context.Context, r store.AccessRequest) (store.AccessRequest, error) {
	if err := s.cfg.Engine.SetGrant(grantOf(r)); err != nil {
		_ = s.endLocked(ctx, r, wire.AccessRevoked, "grant could not be applied: "+err.Error())
		return r, &Error{Code: wire.AccessFailed, Message: fmt.Sprintf("%s was approved but could not be put in force: %v", requestID(r.ID), err)}
	}
	s.poke()
	return r, nil
}

// nodeIfTagged narrows a tagged device's pending count to the device
// (its UserID is whoever registered it).
func nodeIfTagged(w who) store.NodeID {
	if w.hasUsr {
		return 0
	}
	return w.node.ID
}

// decide is what Approve, Deny and Revoke share: the caller resolved, the
// request read in the transaction and checked by check, changed by apply,
// and the outcome audited (a refusal too, as action with outcome
// denied).
func (s *Service) decide(ctx context.Context, c Caller, id, action string, check func(w who, r store.AccessRequest, p *policy.Policy) error,
	apply func(tx *audit.Tx, w who, r *store.AccessRequest) error) (store.AccessRequest, error) {
	w, err := s.resolve(ctx, c)
	if err != nil {
		return store.AccessRequest{}, err
	}
	n, err := parseID(id)
	if err != nil {
		return store.AccessRequest{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.cfg.Policy()
	var r store.AccessRequest
	err = s.cfg.Audit.Commit(ctx, func(tx *audit.Tx) error {
		var err error
		if r, err = tx.GetAccessRequest(ctx, n); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return &Error{Code: wire.AccessNotFound, Message: fmt.Sprintf("no access request %s", requestID(n))}
			}
			return err
		}
		if err := check(w, r, p); err != nil {
			return err
		}
		return apply(tx, w, &r)
	})
	if err != nil {
		s.refused(ctx, w.actor, action, "access:"+requestID(n), nil, err)
		return store.AccessRequest{}, err
	}
	return r, nil
}

// mayDecide checks that w may approve, deny or revoke r under p: never
// their own; an admin always; else an approver of the rule that allows r
// under p. It returns that rule, or matchErr when no rule of p allows r
// any more (then only admins may decide it: its approvers left with its
// rule), and authErr when w may not decide.
func (s *Service) mayDecide(w who, r store.AccessRequest, p *policy.Policy, verb string) (rule policy.AccessRule, matchErr, authErr error) {
	if w.owns(r) {
		return rule, nil, &Error{Code: wire.AccessForbidden, Message: fmt.Sprintf("you filed %s: a requester never %s their own request (warren access cancel ends it)", requestID(r.ID), verb)}
	}
	rule, matchErr = s.rematch(p, r)
	switch {
	case w.admin:
	case matchErr != nil:
		authErr = &Error{Code: wire.AccessForbidden, Message: fmt.Sprintf("no access rule allows %s any more, so only an admin may decide it", requestID(r.ID))}
	case !w.hasUsr || !p.MayApprove(rule.Ref, w.user.Name, w.user.Groups):
		authErr = &Error{Code: wire.AccessForbidden, Message: fmt.Sprintf("you are not an approver of %s under the policy in force", rule.Ref)}
	}
	return rule, matchErr, authErr
}

// Approve approves pending request id, for d if d is set and shorter than
// requested, and puts it in force.
func (s *Service) Approve(ctx context.Context, c Caller, id string, d time.Duration) (wire.AccessRequest, error) {
	var rule policy.AccessRule
	r, err := s.decide(ctx, c, id, "access.approve", func(w who, r store.AccessRequest, p *policy.Policy) error {
		if r.State != wire.AccessPending {
			return &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("%s is %s, not pending", requestID(r.ID), r.State)}
		}
		var matchErr, authErr error
		rule, matchErr, authErr = s.mayDecide(w, r, p, "approves")
		if w.owns(r) {
			return authErr
		}
		if matchErr != nil {
			return matchErr // approved only under a rule in force
		}
		if authErr != nil {
			return authErr
		}
		switch {
		case d < 0:
			return &Error{Code: wire.AccessInvalid, Message: "give a duration above zero"}
		case d > r.Duration:
			return &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("an approval may shorten %s (%s), never lengthen it", requestID(r.ID), fmtDur(r.Duration))}
		}
		return nil
	}, func(tx *audit.Tx, w who, r *store.AccessRequest) error {
		now := s.now()
		if d > 0 {
			r.Duration = d
		}
		// The rule in force now bounds the grant.
		r.Duration = min(r.Duration, rule.MaxDuration)
		r.Rule, r.State, r.Approver, r.Decided, r.Expires = rule.Ref, wire.AccessActive, w.actor, now, now.Add(r.Duration)
		if err := tx.UpdateAccessRequest(ctx, *r); err != nil {
			return err
		}
		tx.Record(event(w.actor, "access.approve", *r, map[string]any{"asAdmin": w.admin}))
		tx.Record(event(w.actor, "access.grant", *r, nil))
		return nil
	})
	if err != nil {
		return wire.AccessRequest{}, err
	}
	// s.mu is free again: take it for the engine, then check the request
	// is still active (a revoke may have come in between).
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, err := s.cfg.Store.GetAccessRequest(ctx, r.ID)
	if err != nil || cur.State != wire.AccessActive {
		return ToWire(cur), err
	}
	r, err = s.putInForce(ctx, cur)
	return ToWire(r), err
}

// Deny denies pending request id with reason.
func (s *Service) Deny(ctx context.Context, c Caller, id, reason string) (wire.AccessRequest, error) {
	reason = strings.TrimSpace(reason)
	r, err := s.decide(ctx, c, id, "access.deny", func(w who, r store.AccessRequest, p *policy.Policy) error {
		if len(reason) > MaxReason {
			return &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("the reason is longer than %d characters", MaxReason)}
		}
		if r.State != wire.AccessPending {
			return &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("%s is %s, not pending", requestID(r.ID), r.State)}
		}
		_, _, authErr := s.mayDecide(w, r, p, "denies")
		return authErr
	}, func(tx *audit.Tx, w who, r *store.AccessRequest) error {
		r.State, r.Approver, r.Note, r.Decided = wire.AccessDenied, w.actor, reason, s.now()
		if err := tx.UpdateAccessRequest(ctx, *r); err != nil {
			return err
		}
		tx.Record(event(w.actor, "access.deny", *r, map[string]any{"asAdmin": w.admin}))
		return nil
	})
	return ToWire(r), err
}

// Revoke ends active grant id early (its approvers and admins).
func (s *Service) Revoke(ctx context.Context, c Caller, id, reason string) (wire.AccessRequest, error) {
	reason = strings.TrimSpace(reason)
	r, err := s.decide(ctx, c, id, "access.revoke", func(w who, r store.AccessRequest, p *policy.Policy) error {
		if len(reason) > MaxReason {
			return &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("the reason is longer than %d characters", MaxReason)}
		}
		if r.State != wire.AccessActive {
			return &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("%s is %s, not an active grant", requestID(r.ID), r.State)}
		}
		if w.owns(r) {
			return &Error{Code: wire.AccessForbidden, Message: fmt.Sprintf("you filed %s: end your own grant with warren access cancel %s", requestID(r.ID), requestID(r.ID))}
		}
		_, _, authErr := s.mayDecide(w, r, p, "revokes")
		return authErr
	}, func(tx *audit.Tx, w who, r *store.AccessRequest) error {
		r.State, r.Approver, r.Note, r.Ended = wire.AccessRevoked, w.actor, reason, s.now()
		if err := tx.UpdateAccessRequest(ctx, *r); err != nil {
			return err
		}
		tx.Record(event(w.actor, "access.revoke", *r, map[string]any{"asAdmin": w.admin}))
		return nil
	})
	if err == nil {
		s.cfg.Engine.RemoveGrant(requestID(r.ID))
	}
	return ToWire(r), err
}

// Cancel withdraws the caller's own pending request, or ends their own
// active grant.
func (s *Service) Cancel(ctx context.Context, c Caller, id string) (wire.AccessRequest, error) {
	wasActive := false
	r, err := s.decide(ctx, c, id, "access.cancel", func(w who, r store.AccessRequest, _ *policy.Policy) error {
		if !w.owns(r) {
			return &Error{Code: wire.AccessNotFound, Message: fmt.Sprintf("no access request %s of yours", requestID(r.ID))}
		}
		if r.State != wire.AccessPending && r.State != wire.AccessActive {
			return &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("%s is %s already", requestID(r.ID), r.State)}
		}
		return nil
	}, func(tx *audit.Tx, w who, r *store.AccessRequest) error {
		now := s.now()
		wasActive = r.State == wire.AccessActive
		r.State = wire.AccessCancelled
		if wasActive {
			r.Ended = now
		} else {
			r.Decided = now
		}
		if err := tx.UpdateAccessRequest(ctx, *r); err != nil {
			return err
		}
		tx.Record(event(w.actor, "access.cancel", *r, nil))
		return nil
	})
	if err == nil && wasActive {
		s.cfg.Engine.RemoveGrant(requestID(r.ID))
	}
	return ToWire(r), err
}

// List returns the caller's own requests, newest first; with pending, the
// pending requests the caller may approve instead. An admin sees all.
func (s *Service) List(ctx context.Context, c Caller, pending bool) ([]wire.AccessRequest, error) {
	w, err := s.resolve(ctx, c)
	if err != nil {
		return nil, err
	}
	f := store.AccessFilter{}
	switch {
	case pending:
		f.States = []string{wire.AccessPending}
	case w.admin:
	case w.hasUsr:
		f.User = w.user.ID
	default:
		f.Node = w.node.ID
	}
	rs, err := s.cfg.Store.ListAccessRequests(ctx, f)
	if err != nil {
		return nil, err
	}
	p := s.cfg.Policy()
	out := make([]wire.AccessRequest, 0, len(rs))
	for _, r := range rs {
		if pending && !w.admin {
			if _, matchErr, authErr := s.mayDecide(w, r, p, "approves"); matchErr != nil || authErr != nil {
				continue
			}
		}
		if !pending && !w.admin && !w.owns(r) {
			continue
		}
		out = append(out, ToWire(r))
	}
	return out, nil
}

// History returns the requests f selects, newest first, for admins.
func (s *Service) History(ctx context.Context, c Caller, f store.AccessFilter) ([]wire.AccessRequest, error) {
	w, err := s.resolve(ctx, c)
	if err != nil {
		return nil, err
	}
	if !w.admin {
		return nil, &Error{Code: wire.AccessForbidden, Message: "the access history is for admins"}
	}
	rs, err := s.cfg.Store.ListAccessRequests(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]wire.AccessRequest, 0, len(rs))
	for _, r := range rs {
		out = append(out, ToWire(r))
	}
	return out, nil
}

// refused audits a change that was not made.
func (s *Service) refused(ctx context.Context, actor, action, target string, detail map[string]any, err error) {
	outcome := audit.Denied
	if Code(err) == wire.AccessFailed {
		outcome = audit.Failed
	}
	d := map[string]any{"error": err.Error(), "code": Code(err)}
	for k, v := range detail {
		d[k] = v
	}
	_ = s.cfg.Audit.Record(ctx, audit.Event{Actor: actor, Action: action, Target: target, Outcome: outcome, Detail: d})
}

// requestText announces a new request (the access webhook's Slack text).
func requestText(r store.AccessRequest) string {
	return fmt.Sprintf("%s requests %s for %s on %s (%s) under %s — approve: warren access approve %s / deny: warren access deny %s --reason …",
		requester(r), r.Dst, fmtDur(r.Duration), r.NodeName, orNone(r.Reason), r.Rule, requestID(r.ID), requestID(r.ID))
}

// fmtDur writes d without zero trailing units: 2h, 1h30m, 90s.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
