package wire

import "time"

// Just-in-time access over the control channel: a node's user (or an
// approver, from their own node) sends an AccessCall and the coordinator
// answers each with one AccessReply carrying the same ID. Calls may be
// answered out of order; a node keeps at most MaxAccessCalls in flight.

// MaxAccessCalls is how many AccessCalls one control channel may have
// unanswered; the coordinator refuses more with CodeAccessBusy.
const MaxAccessCalls = 4

// Access operations (AccessCall.Op).
const (
	AccessOpRequest = "request" // file a request: Dst, For, Reason
	AccessOpList    = "list"    // the caller's requests, or with Pending those it may approve
	AccessOpCancel  = "cancel"  // withdraw one's own pending request, or end one's own grant
	AccessOpApprove = "approve" // approve Request, optionally for a shorter For
	AccessOpDeny    = "deny"    // deny Request with Reason
	AccessOpRevoke  = "revoke"  // end an active grant early (approvers and admins)
	// AccessOpStepUp refreshes the node's user's MFA time without filing
	// a request (warren login --mfa): the coordinator answers first with
	// Code AccessMFARequired and an AuthURL, then, once the user signed
	// in there, with the final reply (empty Code: refreshed). A
	// coordinator that predates it answers AccessInvalid.
	AccessOpStepUp = "step-up"
)

// Access reply codes (AccessReply.Code); empty means success.
const (
	// AccessMFARequired: the access rule wants MFA fresher than the
	// user's; AuthURL is a sign-in page, and the coordinator files the
	// request once that sign-in ends (the reply to the same call comes
	// then).
	AccessMFARequired = "mfa-required"
	AccessForbidden   = "forbidden" // the caller may not do this
	AccessNotFound    = "not-found" // no such request (or not visible to the caller)
	AccessInvalid     = "invalid"   // a malformed or out-of-bounds request
	AccessNoRule      = "no-rule"   // no access rule lets the caller request that destination
	AccessConflict    = "conflict"  // the request is not in a state allowing this
	CodeAccessBusy    = "busy"      // too many calls in flight
	AccessFailed      = "failed"    // the coordinator could not do it (try again)
)

// AccessCall is one just-in-time access operation from a node.
type AccessCall struct {
	ID uint64 `json:"id"`
	Op string `json:"op"`
	// Dst is the requested destination, written as in the policy's
	// access rules ("tag:prod-db:5432").
	Dst string `json:"dst,omitempty"`
	// For is the requested (or, approving, the shortened) duration.
	For    time.Duration `json:"for,omitempty"`
	Reason string        `json:"reason,omitempty"`
	// Request names the request an operation acts on.
	Request string `json:"request,omitempty"`
	// Pending lists, for approvers, the pending requests they may approve.
	Pending bool `json:"pending,omitempty"`
}

// AccessReply answers the AccessCall with the same ID.
type AccessReply struct {
	ID      uint64 `json:"id"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"` // a human-readable error
	// AuthURL is sent first with Code AccessMFARequired, before the final
	// reply to the same call.
	AuthURL  string          `json:"authURL,omitempty"`
	Requests []AccessRequest `json:"requests,omitempty"`
}

// Access request states.
const (
	AccessPending   = "pending"
	AccessActive    = "active" // approved and in force until Expires
	AccessDenied    = "denied"
	AccessCancelled = "cancelled"
	AccessExpired   = "expired"
	AccessRevoked   = "revoked" // ended early by an approver or admin, or its rule left the policy
)

// AccessRequest is one just-in-time access request and, once approved,
// its grant.
type AccessRequest struct {
	ID       string `json:"id"` // "ar-12"
	Node     NodeID `json:"node"`
	NodeName string `json:"nodeName"`
	User     string `json:"user"` // the requester's login
	Dst      string `json:"dst"`
	// Rule is the access rule that allows the request ("access[0]").
	Rule       string        `json:"rule"`
	Reason     string        `json:"reason,omitempty"`
	Duration   time.Duration `json:"duration"` // requested, then granted
	State      string        `json:"state"`
	BreakGlass bool          `json:"breakGlass,omitempty"` // self-approved under a selfApprove rule
	Approver   string        `json:"approver,omitempty"`   // who approved, denied or revoked it
	// Note is the denial's or revocation's reason.
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
	Decided time.Time `json:"decided,omitzero"`
	Expires time.Time `json:"expires,omitzero"` // when an approved grant ends
	Ended   time.Time `json:"ended,omitzero"`
}

// MFADenial is a rule the node fails only because its user's MFA is not
// fresh enough: signing in again (warren login --mfa) would let it pass.
type MFADenial struct {
	Destination string        `json:"destination"` // as the policy writes it
	Rule        string        `json:"rule"`        // "acls[3]"
	MaxAge      time.Duration `json:"maxAge"`      // the rule's "mfa"
}
