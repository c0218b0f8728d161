// Package flowlog is the coordinator's ingest of the flow records nodes
// report over the control channel: it checks each record against what
// the reporting node may say (a destination on the node itself or behind
// a route it serves), resolves the source and destination addresses to
// the nodes, users and tags that held them, and stores the batch in one
// transaction, so the control session acknowledges a batch only once it
// is durable. A deny the node could only call "no-rule" (its filter holds
// only the rules that apply now) is refined from the policy: "posture",
// "mfa" or "time-window" with the id of the rule whose condition failed
// (netmap.Engine.WhyDenied).
//
// It must never trust a node's word about who the source was (SrcNode is
// ignored; the address is resolved), never store a record a node could
// not have seen, and never let one node's records shadow another's.
package flowlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// MaxBatch is the most records one FlowBatch may carry.
const MaxBatch = 5000

// Limits on a record's strings.
const (
	maxIDLen   = 128
	maxTextLen = 256
	// maxCounter keeps counters inside the store's signed integers.
	maxCounter = 1 << 62
)

// ErrTooMany refuses a batch of more than MaxBatch records.
var ErrTooMany = fmt.Errorf("flow batch of more than %d records", MaxBatch)

// Resolver tells who holds addresses, what a node serves and why the
// policy denied a packet; *netmap.Engine is one.
type Resolver interface {
	Node(id wire.NodeID) (netmap.Node, bool)
	Owners(addrs []netip.Addr) map[netip.Addr]netmap.AddrOwner
	// WhyDenied returns the refined reason ("posture", "mfa",
	// "time-window") and rule id of a denied packet from node src to dst
	// on node dstNode at time at, or two empty strings.
	WhyDenied(src, dstNode wire.NodeID, dst netip.Addr, proto uint8, port uint16, at time.Time) (reason, rule string)
}

// ReasonNoRule is the deny reason of a node's filter that the policy may
// refine.
const ReasonNoRule = "no-rule"

// Ingest stores nodes' flow batches.
type Ingest struct {
	resolver Resolver
	audit    *audit.Log
	log      *slog.Logger
}

// New returns an Ingest resolving with r and storing (with its audit
// events) through a.
func New(r Resolver, a *audit.Log, logger *slog.Logger) *Ingest {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Ingest{resolver: r, audit: a, log: logger}
}

// Result says what became of a batch.
type Result struct {
	Stored  int // new rows
	Dupes   int // records already stored (a resend)
	Refused int // records that failed validation
}

// Store validates, resolves and stores the batch node reporter sent from
// remote, in one transaction with the audit events of refused records and
// of records its spool dropped. When it returns nil the batch is durable
// and may be acknowledged; an invalid record is refused (counted and
// audited), not an error.
func (in *Ingest) Store(ctx context.Context, reporter store.NodeID, remote string, b *wire.FlowBatch) (Result, error) {
	var res Result
	if len(b.Records) > MaxBatch {
		return res, ErrTooMany
	}
	self, ok := in.resolver.Node(wire.NodeID(reporter))
	if !ok {
		return res, fmt.Errorf("flow batch: %w: node %d", store.ErrNotFound, reporter)
	}
	rows, refused, firstErr := in.rows(reporter, self, b.Records)
	res.Refused = refused
	actor := fmt.Sprintf("node:%d", reporter)
	err := in.audit.Commit(ctx, func(tx *audit.Tx) error {
		n, err := tx.InsertFlows(ctx, rows)
		if err != nil {
			return err
		}
		res.Stored, res.Dupes = int(n), len(rows)-int(n)
		if refused > 0 {
			tx.Record(audit.Event{Actor: actor, Action: "flows.refused", Target: actor, Remote: remote, Outcome: audit.Denied,
				Detail: map[string]any{"records": refused, "error": audit.Truncate(firstErr.Error(), audit.MaxDetail)}})
		}
		if b.Dropped > 0 {
			tx.Record(audit.Event{Actor: actor, Action: "flows.dropped", Target: actor, Remote: remote, Outcome: audit.Failed,
				Detail: map[string]any{"records": b.Dropped, "batch": b.Seq}})
		}
		return nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("store flow batch %d of node %d: %w", b.Seq, reporter, err)
	}
	if b.Dropped > 0 {
		in.log.Warn("node's flow spool dropped records", "node", reporter, "records", b.Dropped)
	}
	return res, nil
}

// rows turns the valid records into store rows.
func (in *Ingest) rows(reporter store.NodeID, self netmap.Node, recs []wire.FlowRecord) ([]store.Flow, int, error) {
	srcs := make([]netip.Addr, 0, len(recs))
	for _, r := range recs {
		srcs = append(srcs, r.Src.Addr())
	}
	owners := in.resolver.Owners(srcs)
	rows := make([]store.Flow, 0, len(recs))
	refused := 0
	var firstErr error
	for _, r := range recs {
		if err := validate(r, self.Wire); err != nil {
			refused++
			if firstErr == nil {
				firstErr = fmt.Errorf("record %.40q: %w", r.ID, err)
			}
			continue
		}
		f := store.Flow{
			ID: r.ID, Reporter: reporter, Start: r.Start.UTC(), End: r.End.UTC(), Update: r.Update,
			Src: unmap(r.Src), Dst: unmap(r.Dst), Proto: r.Proto,
			DstNode: reporter, DstUser: self.Wire.User, DstTags: self.Wire.Tags,
			PacketsIn: r.PacketsIn, BytesIn: r.BytesIn, PacketsOut: r.PacketsOut, BytesOut: r.BytesOut,
			Verdict: r.Verdict, Reason: r.Reason, Rule: r.Rule, Count: r.Count,
		}
		if o, ok := owners[r.Src.Addr().Unmap()]; ok {
			f.SrcNode, f.SrcUser, f.SrcTags = store.NodeID(o.ID), o.User, o.Tags
			if f.Verdict == "deny" && f.Reason == ReasonNoRule {
				in.refine(&f, o.ID, wire.NodeID(reporter))
			}
		}
		rows = append(rows, f)
	}
	return rows, refused, firstErr
}

// refine replaces a deny's "no-rule" with the condition that kept a rule
// from admitting it, judged at the record's end, and names that rule.
func (in *Ingest) refine(f *store.Flow, src, dstNode wire.NodeID) {
	reason, rule := in.resolver.WhyDenied(src, dstNode, f.Dst.Addr(), f.Proto, f.Dst.Port(), f.End)
	if reason != "" {
		f.Reason, f.Rule = reason, rule
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

var (
	errNotMine = errors.New("destination is neither the node's address nor behind a route it serves")
	errInvalid = errors.New("invalid record")
)

// validate checks one record from the node self.
func validate(r wire.FlowRecord, self wire.Node) error {
	switch {
	case r.ID == "" || len(r.ID) > maxIDLen:
		return fmt.Errorf("%w: ID empty or longer than %d", errInvalid, maxIDLen)
	case r.Verdict != "accept" && r.Verdict != "deny":
		return fmt.Errorf("%w: verdict %.20q", errInvalid, r.Verdict)
	case len(r.Reason) > maxTextLen || len(r.Rule) > maxTextLen:
		return fmt.Errorf("%w: reason or rule too long", errInvalid)
	case r.Start.IsZero() || r.End.IsZero() || r.End.Before(r.Start):
		return fmt.Errorf("%w: times", errInvalid)
	case r.Start.Year() < 2000 || r.End.After(time.Now().Add(24*time.Hour)):
		return fmt.Errorf("%w: times out of range", errInvalid)
	case !r.Src.Addr().IsValid() || !r.Dst.Addr().IsValid():
		return fmt.Errorf("%w: addresses", errInvalid)
	case r.PacketsIn > maxCounter || r.BytesIn > maxCounter || r.PacketsOut > maxCounter || r.BytesOut > maxCounter || r.Count > maxCounter:
		return fmt.Errorf("%w: counter out of range", errInvalid)
	}
	dst := r.Dst.Addr().Unmap()
	for _, p := range self.Addresses {
		if p.Addr() == dst {
			return nil
		}
	}
	for _, p := range self.Routes {
		if p.Contains(dst) {
			return nil
		}
	}
	return errNotMine
}
