package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/warrenmesh/warren/coordinator/audit"
	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/wire"
)

// Device posture: node: attributes the nodes report, custom: ones admins
// and integrations set. The store holds them with the coordinator's time
// of the last report (ReportedAt); what counts for the policy is computed
// from them at each instant (postureView): node: attributes reported
// within the maximum age, custom: ones not expired. The moment the next
// one goes stale or expires, a timer per node publishes the node again
// (postureTimers), so access follows within the engine's usual delay.

// Posture limits.
const (
	// DefaultPostureMaxAge is how long a node's report counts without a
	// newer report or heartbeat.
	DefaultPostureMaxAge = 15 * time.Minute
	// MaxPostureAttrs bounds the attributes in one report or one set
	// request, and the custom: attributes one node can hold.
	MaxPostureAttrs = 64
	// MaxAttrName and MaxAttrValue bound names (with their namespace) and
	// values, in bytes.
	MaxAttrName  = 64
	MaxAttrValue = 256
)

// Attribute namespaces.
const (
	NodeAttrPrefix   = "node:"
	CustomAttrPrefix = "custom:"
	// SourceNode is the source of what a node reported.
	SourceNode = "node"
)

// CheckAttrName checks an attribute name: "node:" or "custom:" and then
// a letter followed by letters, digits, '_', '-' or '.', MaxAttrName bytes
// in all.
func CheckAttrName(name string) error {
	if len(name) > MaxAttrName {
		return fmt.Errorf("%w: attribute name %.20q (cut short) is longer than %d bytes", ErrBadRequest, name, MaxAttrName)
	}
	rest, ok := strings.CutPrefix(name, NodeAttrPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(name, CustomAttrPrefix)
	}
	if !ok {
		return fmt.Errorf("%w: attribute %q: names start with node: or custom: (e.g. custom:mdmCompliant)", ErrBadRequest, name)
	}
	for i, c := range rest {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.')) {
			return fmt.Errorf("%w: attribute %q: after the namespace comes a letter, then letters, digits, _, - or dots", ErrBadRequest, name)
		}
	}
	if rest == "" {
		return fmt.Errorf("%w: attribute %q has no name after its namespace", ErrBadRequest, name)
	}
	return nil
}

// CheckAttrValue checks an attribute value: valid UTF-8 without control
// characters, at most MaxAttrValue bytes.
func CheckAttrValue(name, v string) error {
	if len(v) > MaxAttrValue {
		return fmt.Errorf("%w: value of %s is longer than %d bytes", ErrBadRequest, name, MaxAttrValue)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return fmt.Errorf("%w: value of %s is not printable text", ErrBadRequest, name)
	}
	return nil
}

// CheckPostureReport checks a node's report: node: attributes only, at
// most MaxPostureAttrs, each name and value within bounds. A report that
// fails is refused whole.
func CheckPostureReport(rep *wire.PostureReport) error {
	if len(rep.Attrs) > MaxPostureAttrs {
		return fmt.Errorf("%w: %d attributes; a report holds at most %d", ErrBadRequest, len(rep.Attrs), MaxPostureAttrs)
	}
	for _, name := range slices.Sorted(maps.Keys(rep.Attrs)) {
		if err := CheckAttrName(name); err != nil {
			return err
		}
		if !strings.HasPrefix(name, NodeAttrPrefix) {
			return fmt.Errorf("%w: nodes report node: attributes only; %s can only be set by an admin or integration", ErrForbidden, name)
		}
		if err := CheckAttrValue(name, rep.Attrs[name].Value); err != nil {
			return err
		}
	}
	return nil
}

// ReportPosture records node id's posture report from its control
// channel. A report with attributes replaces every node: attribute held
// for the node; a heartbeat (Unchanged, no attributes) confirms them.
// Either way their ReportedAt becomes now. A report that fails
// CheckPostureReport is refused whole (the attributes held stay as they
// were) and the refusal is audited with the node as actor. Only changes
// of names or values are audited, never heartbeats or re-reports of the
// same values.
func (r *Registry) ReportPosture(ctx context.Context, id store.NodeID, rep *wire.PostureReport, remote string) error {
	if rep == nil {
		return nil
	}
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		return err
	}
	now := r.now()
	ev := audit.Event{Actor: "node:" + n.MachineKey.String(), Action: "node.posture.report", Target: fmt.Sprintf("node:%d", id),
		Remote: remote, Detail: map[string]any{}}
	if err := CheckPostureReport(rep); err != nil {
		if !r.newRefusal(id, err.Error()) {
			return err // the same refusal as the node's last: audited then
		}
		names := slices.Sorted(maps.Keys(rep.Attrs))
		ev.Detail["attrs"] = audit.Truncate(strings.Join(names[:min(len(names), MaxPostureAttrs)], ","), 1024)
		return r.deny(ctx, ev, err)
	}
	r.newRefusal(id, "")
	held, err := r.st.ListNodeAttrs(ctx, id)
	if err != nil {
		return err
	}
	if rep.Unchanged && len(rep.Attrs) == 0 {
		if _, err := r.st.TouchNodeAttrs(ctx, id, NodeAttrPrefix, now); err != nil {
			return err
		}
		r.publishPosture(ctx, &n)
		return nil
	}
	old := map[string]string{}
	for _, a := range held {
		if strings.HasPrefix(a.Name, NodeAttrPrefix) {
			old[a.Name] = a.Value
		}
	}
	nw := make(map[string]string, len(rep.Attrs))
	for name, v := range rep.Attrs {
		nw[name] = v.Value
	}
	write := func(q store.Queries) error {
		for name := range old {
			if _, ok := nw[name]; !ok {
				if err := q.DeleteNodeAttr(ctx, id, name); err != nil {
					return err
				}
			}
		}
		for name, v := range rep.Attrs {
			err := q.PutNodeAttr(ctx, store.NodeAttr{Node: id, Name: name, Value: v.Value, Source: SourceNode,
				CollectedAt: v.CollectedAt, ReportedAt: now})
			if err != nil {
				return err
			}
		}
		return nil
	}
	if maps.Equal(old, nw) {
		err = r.st.Tx(ctx, write)
	} else {
		ev.Detail["attrs"] = audit.Truncate(formatAttrs(nw), 2048)
		ev.Detail["previous"] = audit.Truncate(formatAttrs(old), 2048)
		err = r.commit(ctx, ev, func(tx *audit.Tx) error { return write(tx) })
	}
	if err != nil {
		return err
	}
	r.publishPosture(ctx, &n)
	return nil
}

// newRefusal records why node id's latest report was refused ("": it
// was not) and reports whether that differs from the time before, so
// that a node repeating one bad report does not flood the audit log.
func (r *Registry) newRefusal(id store.NodeID, why string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refusals[id] == why {
		return false
	}
	if why == "" {
		delete(r.refusals, id)
	} else {
		r.refusals[id] = why
	}
	return true
}

// formatAttrs writes attributes as sorted name=value pairs.
func formatAttrs(m map[string]string) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%s", name, m[name])
	}
	return b.String()
}

// source is how attributes a sets are labelled: "integration mdm-sync",
// "admin alice@example.com".
func (a Actor) source() string {
	if a.Integration != "" {
		return "integration " + a.Integration
	}
	name, _ := strings.CutPrefix(a.Name, "user:")
	return "admin " + name
}

// maySetAttrs reports whether a may set or unset custom: attributes:
// admins and integration keys.
func (a Actor) maySetAttrs() error {
	if a.Admin || a.Integration != "" {
		return nil
	}
	return fmt.Errorf("%w: only admins and integration API keys set attributes", ErrForbidden)
}

// NodeAttrs returns the attributes held for node id: admins and
// integrations see every node's, members their own nodes'.
func (r *Registry) NodeAttrs(ctx context.Context, a Actor, id store.NodeID) (store.Node, []store.NodeAttr, error) {
	n, err := r.st.GetNode(ctx, id)
	if err != nil {
		return n, nil, err
	}
	if a.Integration == "" {
		if err := a.may(n.UserID); err != nil || (n.Tagged() && !a.Admin) {
			return n, nil, fmt.Errorf("node %d: %w", id, store.ErrNotFound)
		}
	}
	attrs, err := r.st.ListNodeAttrs(ctx, id)
	return n, attrs, err
}

// AllNodeAttrs returns every node's attributes, by node (admins and
// integrations only).
func (r *Registry) AllNodeAttrs(ctx context.Context, a Actor) ([]store.Node, map[store.NodeID][]store.NodeAttr, error) {
	if err := a.maySetAttrs(); err != nil {
		return nil, nil, err
	}
	nodes, err := r.st.ListNodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	all, err := r.st.ListAllNodeAttrs(ctx)
	if err != nil {
		return nil, nil, err
	}
	by := make(map[store.NodeID][]store.NodeAttr)
	for _, at := range all {
		by[at.Node] = append(by[at.Node], at)
	}
	return nodes, by, nil
}

// SetAttrs sets custom: attributes of node id (admins and integration
// keys), each until expires (zero: until unset). node: attributes come
// from the node only and are refused. The change and its audit event
// commit together; the node's access follows at once.
func (r *Registry) SetAttrs(ctx context.Context, a Actor, id store.NodeID, attrs map[string]string, expires time.Time) ([]store.NodeAttr, error) {
	now := r.now()
	detail := map[string]any{"attrs": audit.Truncate(formatAttrs(attrs), 2048), "source": a.source()}
	if !expires.IsZero() {
		detail["expires"] = expires.UTC().Format(time.RFC3339)
	}
	ev := a.event("node.attrs.set", fmt.Sprintf("node:%d", id), detail)
	err := a.maySetAttrs()
	if err == nil {
		err = checkSet(attrs, expires, now)
	}
	if err != nil {
		return nil, r.deny(ctx, ev, err)
	}
	var n store.Node
	var held []store.NodeAttr
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		if n, err = tx.GetNode(ctx, id); err != nil {
			return err
		}
		for name, v := range attrs {
			if err := tx.PutNodeAttr(ctx, store.NodeAttr{Node: id, Name: name, Value: v, Source: a.source(), ReportedAt: now, ExpiresAt: expires}); err != nil {
				return err
			}
		}
		if held, err = tx.ListNodeAttrs(ctx, id); err != nil {
			return err
		}
		custom := 0
		for _, h := range held {
			if strings.HasPrefix(h.Name, CustomAttrPrefix) {
				custom++
			}
		}
		if custom > MaxPostureAttrs {
			return fmt.Errorf("%w: node %d would hold %d custom: attributes; at most %d", ErrBadRequest, id, custom, MaxPostureAttrs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.publishPosture(ctx, &n)
	return held, nil
}

// checkSet checks the attributes of a set request.
func checkSet(attrs map[string]string, expires, now time.Time) error {
	if len(attrs) == 0 {
		return fmt.Errorf("%w: name at least one attribute, e.g. custom:mdmCompliant=true", ErrBadRequest)
	}
	if len(attrs) > MaxPostureAttrs {
		return fmt.Errorf("%w: %d attributes; set at most %d at once", ErrBadRequest, len(attrs), MaxPostureAttrs)
	}
	for _, name := range slices.Sorted(maps.Keys(attrs)) {
		if err := checkCustomName(name); err != nil {
			return err
		}
		if err := CheckAttrValue(name, attrs[name]); err != nil {
			return err
		}
	}
	if !expires.IsZero() && !expires.After(now) {
		return fmt.Errorf("%w: expiry %s is not in the future", ErrBadRequest, expires.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkCustomName(name string) error {
	if err := CheckAttrName(name); err != nil {
		return err
	}
	if !strings.HasPrefix(name, CustomAttrPrefix) {
		return fmt.Errorf("%w: %s is reported by the node itself; set custom: attributes (e.g. custom:mdmCompliant)", ErrBadRequest, name)
	}
	return nil
}

// UnsetAttrs removes custom: attributes of node id (admins and
// integration keys); each must be set.
func (r *Registry) UnsetAttrs(ctx context.Context, a Actor, id store.NodeID, names []string) ([]store.NodeAttr, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	ev := a.event("node.attrs.unset", fmt.Sprintf("node:%d", id),
		map[string]any{"attrs": audit.Truncate(strings.Join(names, ","), 2048), "source": a.source()})
	err := a.maySetAttrs()
	if err == nil && (len(names) == 0 || len(names) > MaxPostureAttrs) {
		err = fmt.Errorf("%w: name between 1 and %d attributes to unset", ErrBadRequest, MaxPostureAttrs)
	}
	for _, name := range names {
		if err == nil {
			err = checkCustomName(name)
		}
	}
	if err != nil {
		return nil, r.deny(ctx, ev, err)
	}
	var n store.Node
	var held []store.NodeAttr
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		if n, err = tx.GetNode(ctx, id); err != nil {
			return err
		}
		for _, name := range names {
			if err := tx.DeleteNodeAttr(ctx, id, name); errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%w: %s is not set on node %d", ErrBadRequest, name, id)
			} else if err != nil {
				return err
			}
		}
		held, err = tx.ListNodeAttrs(ctx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	r.publishPosture(ctx, &n)
	return held, nil
}

// PostureView is what a node's stored attributes mean at one instant.
type PostureView struct {
	// Counting are the attributes the policy sees: fresh node: ones and
	// unexpired custom: ones.
	Counting map[string]string
	// Held are all attributes held except expired ones, stale node: ones
	// marked, sorted by name (MapResponse.Posture.Attrs).
	Held []wire.PostureAttr
	// Next is when the view changes by itself: the next attribute to go
	// stale or expire (zero: none).
	Next time.Time
}

// ViewPosture computes what attrs mean at now with node: attributes
// counting for maxAge after they were last reported.
func ViewPosture(attrs []store.NodeAttr, now time.Time, maxAge time.Duration) PostureView {
	v := PostureView{Counting: map[string]string{}}
	sooner := func(t time.Time) {
		if v.Next.IsZero() || t.Before(v.Next) {
			v.Next = t
		}
	}
	for _, a := range attrs {
		pa := wire.PostureAttr{Name: a.Name, Value: a.Value, Source: a.Source, CollectedAt: a.CollectedAt, Expires: a.ExpiresAt}
		if strings.HasPrefix(a.Name, NodeAttrPrefix) {
			staleAt := a.ReportedAt.Add(maxAge)
			pa.Stale = !now.Before(staleAt)
			if !pa.Stale {
				v.Counting[a.Name] = a.Value
				sooner(staleAt)
			}
		} else {
			if !a.ExpiresAt.IsZero() && !now.Before(a.ExpiresAt) {
				continue
			}
			v.Counting[a.Name] = a.Value
			if !a.ExpiresAt.IsZero() {
				sooner(a.ExpiresAt)
			}
		}
		v.Held = append(v.Held, pa)
	}
	sort.Slice(v.Held, func(i, j int) bool { return v.Held[i].Name < v.Held[j].Name })
	return v
}

// PostureMaxAge is how long a node's report counts.
func (r *Registry) PostureMaxAge() time.Duration { return r.maxAge }

// CreateIntegrationKey creates an integration API key (admins only),
// owned by admin user (0: the caller): it may only read nodes' attributes
// and set custom: ones, labelled with name ("mdm-sync"). It stops working
// when its owner is disabled or no longer an admin. The plaintext is
// returned once.
func (r *Registry) CreateIntegrationKey(ctx context.Context, a Actor, user store.UserID, name string, ttl time.Duration) (store.APIKey, string, error) {
	if user == 0 {
		user = a.UserID
	}
	plain, hash, display := auth.NewSecret(auth.APIKeyPrefix)
	k := store.APIKey{Prefix: display, Hash: hash, UserID: user, Created: r.now(), Role: store.APIKeyIntegration, Name: name}
	if ttl > 0 {
		k.Expiration = k.Created.Add(ttl)
	}
	ev := a.event("apikey.create", "apikey:"+display, map[string]any{"user": user, "role": string(k.Role), "name": name})
	err := a.admin()
	if err == nil {
		err = CheckIntegrationName(name)
	}
	if err == nil && user == 0 {
		err = fmt.Errorf("%w: name the admin user who owns the key (--user)", ErrBadRequest)
	}
	if err != nil {
		return store.APIKey{}, "", r.deny(ctx, ev, err)
	}
	err = r.commit(ctx, ev, func(tx *audit.Tx) error {
		u, err := tx.GetUser(ctx, user)
		if err != nil {
			return err
		}
		if u.Role != store.RoleAdmin || u.Disabled {
			return fmt.Errorf("%w: an integration key's owner must be an enabled admin; %s is not", ErrBadRequest, u.Name)
		}
		k, err = tx.CreateAPIKey(ctx, k)
		return err
	})
	if err != nil {
		return store.APIKey{}, "", err
	}
	return k, plain, nil
}

// CheckIntegrationName checks an integration key's name: 1 to 64 of
// a-z, A-Z, 0-9, '-', '_' and '.'.
func CheckIntegrationName(name string) error {
	ok := len(name) > 0 && len(name) <= 64
	for _, c := range name {
		ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}
	if !ok {
		return fmt.Errorf("%w: name the integration (e.g. mdm-sync): 1 to 64 letters, digits, -, _ or dots", ErrBadRequest)
	}
	return nil
}
