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
package access

import (
	"context"
	"errors"
	"log/slog"
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
}

// Service is the just-in-time access service.
type Service struct {
	cfg Config
}

// New returns a service; Start puts the stored grants back in force.
func New(cfg Config) (*Service, error) {
	return &Service{cfg: cfg}, errors.New("access: not implemented")
}

// Start puts every stored active grant that has not expired back in force
// and ends (audited access.expire) those that expired while the
// coordinator was down. Call it once, before nodes connect.
func (s *Service) Start(ctx context.Context) error { return errors.New("not implemented") }

// Run records expiries (access.expire) as grants reach their end, until
// ctx ends. Enforcement does not wait for it: the engine withdraws a
// grant at its Until by itself.
func (s *Service) Run(ctx context.Context) error { return errors.New("not implemented") }

// PolicyChanged re-checks grants in force against policy p: a grant no
// access rule of p allows any more ends (access.revoke, note "rule
// removed"). Pending requests are judged against the policy at decision
// time anyway.
func (s *Service) PolicyChanged(ctx context.Context, p *policy.Policy) error {
	return errors.New("not implemented")
}

// Request files a request for dst for d with reason. Under a rule with
// "mfa" older than the requester's last MFA it fails with Code
// wire.AccessMFARequired; under a selfApprove rule it is granted at once
// (break-glass).
func (s *Service) Request(ctx context.Context, c Caller, dst string, d time.Duration, reason string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, errors.New("not implemented")
}

// Approve approves pending request id, for d if d is set and shorter than
// requested, and puts it in force.
func (s *Service) Approve(ctx context.Context, c Caller, id string, d time.Duration) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, errors.New("not implemented")
}

// Deny denies pending request id with reason.
func (s *Service) Deny(ctx context.Context, c Caller, id, reason string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, errors.New("not implemented")
}

// Cancel withdraws the caller's own pending request, or ends their own
// active grant.
func (s *Service) Cancel(ctx context.Context, c Caller, id string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, errors.New("not implemented")
}

// Revoke ends active grant id early (its approvers and admins).
func (s *Service) Revoke(ctx context.Context, c Caller, id, reason string) (wire.AccessRequest, error) {
	return wire.AccessRequest{}, errors.New("not implemented")
}

// List returns the caller's own requests, newest first; with pending, the
// pending requests the caller may approve instead. An admin sees all.
func (s *Service) List(ctx context.Context, c Caller, pending bool) ([]wire.AccessRequest, error) {
	return nil, errors.New("not implemented")
}
