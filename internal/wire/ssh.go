package wire

import (
	"net/netip"
	"time"
)

// SSH by mesh identity. The coordinator compiles the policy's ssh rules
// for each destination node into an SSHPolicy, sent in MapResponse.SSH;
// the node's SSH server (warrend --ssh) admits a connection only when its
// source is a peer named in a rule's Sources and the requested local
// user is one of the rule's Users. Check rules, session start and end,
// and denials go to the coordinator as SSHCalls, each answered by one
// SSHReply with the same ID (a check that needs a sign-in first gets an
// SSHReply with Code SSHAuthRequired and an AuthURL, then the final one).
// A node keeps at most MaxSSHCalls in flight.

// MaxSSHCalls is how many SSHCalls one control channel may have
// unanswered; the coordinator refuses more with CodeSSHBusy.
const MaxSSHCalls = 8

// SSH rule actions (SSHRule.Action).
const (
	SSHAccept = "accept"
	SSHCheck  = "check" // the source's user signs in again within CheckPeriod
)

// SSHCheckAlways is SSHRule.CheckPeriod for checkPeriod "always": every
// session needs a fresh sign-in.
const SSHCheckAlways time.Duration = -1

// SSHPort is the port the node's SSH server listens on, on its mesh
// addresses.
const SSHPort = 22

// RecorderPort is the port a recorder node (warren-recorder behind
// warrend --expose) takes recordings on, on its mesh address.
const RecorderPort = 80

// SSHPolicy is the ssh rules that let peers log in to this node. An empty
// policy (or none) admits nobody.
type SSHPolicy struct {
	Rules []SSHRule `json:"rules,omitempty"`
}

// SSHRule is one policy ssh rule as it applies to this node.
type SSHRule struct {
	// Rule names the policy rule ("ssh[2]"), for audit and whois.
	Rule string `json:"rule"`
	// Sources are the peers the rule admits, sorted.
	Sources []NodeID `json:"sources"`
	// Users are the local users, as the policy writes them: names,
	// "autogroup:nonroot" (anyone but root) and "localpart:*@DOMAIN" (the
	// local part of the source user's login in DOMAIN).
	Users []string `json:"users"`
	// Action is SSHAccept or SSHCheck.
	Action string `json:"action"`
	// CheckPeriod is, for check rules, how recent the source user's
	// sign-in must be (SSHCheckAlways: a new one every session).
	CheckPeriod time.Duration `json:"checkPeriod,omitempty"`
	// AcceptEnv lists the environment variables (with * and ?) the
	// client may set.
	AcceptEnv []string `json:"acceptEnv,omitempty"`
	// PortForwarding allows local port forwarding (ssh -L).
	PortForwarding bool `json:"portForwarding,omitempty"`
	// Record, when set, requires the session to be recorded.
	Record *SSHRecording `json:"record,omitempty"`
}

// SSHRecording says where a rule's sessions are recorded.
type SSHRecording struct {
	// Recorders are peers carrying the rule's recorder tags, sorted; the
	// node streams to the first one that takes the recording, on
	// RecorderPort. None: the coordinator records (SSHCall Op SSHOpStart
	// with RecordToCoordinator answers RecordURL and RecordToken).
	Recorders []NodeID `json:"recorders,omitempty"`
	// RecorderTags are the rule's recorder tags. When set, only a peer in
	// Recorders may record: with none reachable the session has no
	// recorder (the coordinator records only for rules naming none).
	RecorderTags []string `json:"recorderTags,omitempty"`
	// FailOpen lets the session go on unrecorded when no recorder takes
	// it (the rule's "enforceRecorder": false); by default a session that
	// cannot be recorded is refused.
	FailOpen bool `json:"failOpen,omitempty"`
}

// SSH call operations (SSHCall.Op).
const (
	// SSHOpCheck asks whether Src's user signed in recently enough for
	// the check rule Rule to let them log in as LocalUser. The final
	// reply's empty Code means yes.
	SSHOpCheck = "check"
	// SSHOpStart records that a session began (after any check and once
	// its recording, if required, is under way).
	SSHOpStart = "start"
	// SSHOpEnd records that a session ended.
	SSHOpEnd = "end"
	// SSHOpDeny records a refused login.
	SSHOpDeny = "deny"
)

// SSH reply codes (SSHReply.Code); empty means success.
const (
	SSHAuthRequired = "auth-required" // sign in at AuthURL; the final reply follows
	SSHDenied       = "denied"        // the policy does not allow it, or the sign-in failed
	SSHInvalid      = "invalid"       // a malformed call
	CodeSSHBusy     = "busy"          // too many calls in flight
	SSHFailed       = "failed"        // the coordinator could not do it
)

// RecordToCoordinator is SSHCall.Recorder when the session is recorded by
// the coordinator.
const RecordToCoordinator = "coordinator"

// SSHCall is one SSH session event or question from the destination node.
type SSHCall struct {
	ID uint64 `json:"id"`
	Op string `json:"op"`
	// Session is the node's ID for the session ("ssh-" and random hex),
	// the same in start and end.
	Session string `json:"session,omitempty"`
	// Src is the connecting peer and SrcAddr its address and port.
	Src     NodeID         `json:"src"`
	SrcAddr netip.AddrPort `json:"srcAddr,omitzero"`
	// LocalUser is the login the client asked for.
	LocalUser string `json:"localUser"`
	// Rule is the ssh rule that admits (or, checking, would admit) it.
	Rule string `json:"rule,omitempty"`
	// Command is what the session runs ("" for a login shell); PTY
	// whether it has a terminal.
	Command string `json:"command,omitempty"`
	PTY     bool   `json:"pty,omitempty"`
	// Recorder is where the session is recorded: RecordToCoordinator, or
	// the recorder node's name; empty when not recorded. Recording is the
	// recording's address there (start; for the coordinator, set by the
	// coordinator).
	Recorder  string `json:"recorder,omitempty"`
	Recording string `json:"recording,omitempty"`
	// Unrecorded marks a session whose rule wants a recording that no
	// recorder took, let through because the rule fails open.
	Unrecorded bool `json:"unrecorded,omitempty"`
	// End: how long the session lasted, its exit status (-1 when none),
	// and why it ended when it was cut ("user disabled", "policy").
	Duration time.Duration `json:"duration,omitempty"`
	ExitCode int           `json:"exitCode,omitempty"`
	Reason   string        `json:"reason,omitempty"` // deny and end: why
}

// SSHReply answers the SSHCall with the same ID.
type SSHReply struct {
	ID      uint64 `json:"id"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"` // human-readable, shown to the SSH client
	// AuthURL is sent first with Code SSHAuthRequired.
	AuthURL string `json:"authURL,omitempty"`
	// RecordURL and RecordToken answer a start with Recorder
	// RecordToCoordinator: POST the cast there, with the token as a
	// bearer token (single use, for this session only).
	RecordURL   string `json:"recordURL,omitempty"`
	RecordToken string `json:"recordToken,omitempty"`
}

func (*SSHCall) WireType() Type  { return TypeSSHCall }
func (*SSHReply) WireType() Type { return TypeSSHReply }
