// Package access runs just-in-time access: requests filed from a node
// (or by an admin), approved or denied by the approvers the policy's
// access section names as it is at the time of the decision, and
// approved requests put in force as time-bounded grants for the
// requesting device only (netmap.Engine.SetGrant), withdrawn at expiry,
// on revocation, or when their access rule leaves the policy. Every
// state change commits in one transaction with its audit event
// (access.request, access.approve, access.deny, access.cancel,
// access.grant, access.expire, access.revoke, access.break-glass).
//
// It must never let a requester approve their own request (except under
// a selfApprove break-glass rule, which always raises alert.break-glass),
// never grant longer than the rule's maxDuration, never apply a grant to
// a device other than the requesting one, and never trust a caller's
// claim about who they are: a node caller is resolved from the store as
// the node's owner is now.
//
// Decisions: a request is filed from the device that needs the access
// (a node caller); a tagged device may file one when an access rule's src
// selects its tags, but it cannot satisfy an "mfa" condition and cannot
// approve. Approvers are the rule's approvers under the policy in force
// at the time of the decision, the request re-matched against it; an
// admin acting through warren-coordinator (the admin API) may approve,
// deny and revoke too, an explicit operator action audited with
// "asAdmin": true. Nobody, admins included, approves or denies their own
// request. An approval records access.approve and access.grant in one
// transaction; a break-glass request records access.request,
// access.break-glass, alert.break-glass and access.grant.
package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// Error is a refusal with one of wire's Access* codes, so the control
// channel, the admin API and the CLIs report the same thing.
type Error struct {
	Code    string // wire.AccessForbidden, wire.AccessNoRule, …
	Message string
	// MFAMaxAge is set with Code wire.AccessMFARequired: how fresh the
	// requester's MFA must be.
	MFAMaxAge time.Duration
}

func (e *Error) Error() string { return e.Message }

// Code returns err's access code: "" for nil, wire.AccessFailed for an
// error that is not an *Error.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return wire.AccessFailed
}

// Caller is who asks. A call from a node's control channel sets Node (the
// service resolves the node's owner as they are now); an admin call (the
// admin API, the admin socket) sets Actor and leaves Node 0.
type Caller struct {
	Node  store.NodeID
	Actor registry.Actor
}

// Config configures a Service.
type Config struct {
	Store  store.Store
	Audit  *audit.Log
	Engine *netmap.Engine
	// Policy returns the policy in force.
	Policy func() *policy.Policy
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// MaxPending bounds each user's pending requests (0: DefaultMaxPending),
	// so a misbehaving client cannot fill the table.
	MaxPending int
}

// DefaultMaxPending is Config.MaxPending's default.
const DefaultMaxPending = 16

// Bounds of a request's text fields.
const (
	MaxReason = 500
	MaxDst    = 256
)

// Service is the just-in-time access service.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	// mu orders the state changes that touch the engine (a commit and the
	// grant it puts in force or ends), so that the engine's grants follow
	// the store's in commit order.
	mu   sync.Mutex
	wake chan struct{} // a grant started: Run looks at the next expiry again
}

// New returns a service; Start puts the stored grants back in force.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Audit == nil || cfg.Engine == nil || cfg.Policy == nil {
		return nil, errors.New("access: Store, Audit, Engine and Policy are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	return &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now, wake: make(chan struct{}, 1)}, nil
}

// Start puts every stored active grant that has not expired back in force
// and ends (audited access.expire) those that expired while the
// coordinator was down. Call it once, before nodes connect.
func (s *Service) Start(ctx context.Context) error {
	if err := s.expireDue(ctx); err != nil {
		return fmt.Errorf("access: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	active, err := s.cfg.Store.ListAccessRequests(ctx, store.AccessFilter{States: []string{wire.AccessActive}, Limit: maxActive})
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	p := s.cfg.Policy()
	for _, r := range active {
		if _, err := s.rematch(p, r); err != nil {
			s.endLocked(ctx, r, wire.AccessRevoked, "access rule removed from the policy")
			continue
		}
		if err := s.cfg.Engine.SetGrant(grantOf(r)); err != nil {
			s.endLocked(ctx, r, wire.AccessRevoked, "grant could not be restored: "+err.Error())
		}
	}
	return nil
}

// maxActive bounds the grants one pass looks at.
const maxActive = 10000

// Run records expiries (access.expire) as grants reach their end, until
// ctx ends. Enforcement does not wait for it: the engine withdraws a
// grant at its Until by itself.
func (s *Service) Run(ctx context.Context) error {
	// recheck bounds the wait, should the clock jump; retry follows a
	// failure; minWait keeps a clock that stands still from spinning.
	const recheck, retry, minWait = time.Minute, 5 * time.Second, 10 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.wake:
		}
		wait := recheck
		if err := s.expireDue(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.log.Warn("access: recording expired grants failed; will retry", "err", err)
			wait = retry
		} else if next, err := s.cfg.Store.NextAccessExpiry(ctx, wire.AccessActive); err == nil && !next.IsZero() {
			wait = min(max(next.Sub(s.now()), minWait), recheck)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// expireDue ends, with access.expire, every active grant whose expiry has
// come.
func (s *Service) expireDue(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	due, err := s.cfg.Store.ListAccessRequests(ctx, store.AccessFilter{States: []string{wire.AccessActive},
		ExpiresBy: s.now(), Limit: maxActive})
	if err != nil {
		return err
	}
	for _, r := range due {
		r.State, r.Ended = wire.AccessExpired, r.Expires
		err := s.cfg.Audit.Commit(ctx, func(tx *audit.Tx) error {
			cur, err := tx.GetAccessRequest(ctx, r.ID)
			if err != nil || cur.State != wire.AccessActive {
				return err // ended meanwhile: nothing to record
			}
			if err := tx.UpdateAccessRequest(ctx, r); err != nil {
				return err
			}
			tx.Record(event("system", "access.expire", r, nil))
			return nil
		})
		if err != nil {
			return err
		}
		s.cfg.Engine.RemoveGrant(requestID(r.ID))
	}
	return nil
}

// poke tells Run a grant started.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// PolicyChanged re-checks grants in force against policy p: a grant no
// access rule of p allows any more ends (access.revoke, note "access rule
// removed from the policy"). Pending requests are judged against the
// policy at decision time anyway.
func (s *Service) PolicyChanged(ctx context.Context, p *policy.Policy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	active, err := s.cfg.Store.ListAccessRequests(ctx, store.AccessFilter{States: []string{wire.AccessActive}, Limit: maxActive})
	if err != nil {
		return fmt.Errorf("access: %w", err)
	}
	var errs []error
	for _, r := range active {
		if _, err := s.rematch(p, r); err == nil {
			continue
		}
		if err := s.endLocked(ctx, r, wire.AccessRevoked, "access rule removed from the policy"); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rematch finds the access rule of p that allows r now.
func (s *Service) rematch(p *policy.Policy, r store.AccessRequest) (policy.AccessRule, error) {
	n, ok := s.cfg.Engine.Node(wire.NodeID(r.NodeID))
	if !ok {
		return policy.AccessRule{}, &Error{Code: wire.AccessConflict, Message: fmt.Sprintf("the requesting device (node %d) is no longer in the mesh", r.NodeID)}
	}
	rule, err := p.MatchAccess(policyNode(n), r.Dst)
	if err != nil {
		return rule, matchError(err, r.Dst)
	}
	return rule, nil
}

// endLocked ends r (pending or active) in state with note, audited as
// system action access.revoke (access.expire for AccessExpired), and
// withdraws its grant. s.mu is held.
func (s *Service) endLocked(ctx context.Context, r store.AccessRequest, state, note string) error {
	now := s.now()
	r.State, r.Note, r.Ended = state, note, now
	if r.Decided.IsZero() {
		r.Decided = now
	}
	action := "access.revoke"
	if state == wire.AccessExpired {
		action = "access.expire"
	}
	err := s.cfg.Audit.Commit(ctx, func(tx *audit.Tx) error {
		if err := tx.UpdateAccessRequest(ctx, r); err != nil {
			return err
		}
		tx.Record(event("system", action, r, nil))
		return nil
	})
	s.cfg.Engine.RemoveGrant(requestID(r.ID))
	if err != nil {
		s.log.Error("access: ending a grant was not recorded", "request", requestID(r.ID), "err", err)
	}
	return err
}

// policyNode is n as the policy sees it.
func policyNode(n netmap.Node) policy.Node {
	return policy.Node{ID: n.Wire.ID, Addresses: n.Wire.Addresses, User: n.Wire.User, Groups: n.Groups, Admin: n.Admin,
		Tags: n.Wire.Tags, Attrs: n.Attrs, MFAAt: n.MFAAt, Routes: n.Wire.Routes}
}

// grantOf is active request r as the engine's grant.
func grantOf(r store.AccessRequest) policy.Grant {
	return policy.Grant{ID: requestID(r.ID), Node: wire.NodeID(r.NodeID), Dst: r.Dst, Rule: r.Rule, Until: r.Expires}
}

// matchError maps policy.MatchAccess's errors to access codes.
func matchError(err error, dst string) error {
	switch {
	case errors.Is(err, policy.ErrBadDestination):
		return &Error{Code: wire.AccessInvalid, Message: fmt.Sprintf("destination %q: %v (write it like an acls destination, e.g. tag:prod-db:5432)", dst, err)}
	case errors.Is(err, policy.ErrNoAccessRule):
		return &Error{Code: wire.AccessNoRule, Message: fmt.Sprintf("%s: %v; ask an admin to add an access rule to the policy", dst, err)}
	}
	return err
}
