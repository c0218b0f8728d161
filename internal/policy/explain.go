package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tailscale/hujson"
)

// Query is one connection to explain. The source is SrcNode, or else Src:
// a user login, tag:..., host alias or IP address. The destination is
// DstNode, or else Dst of the same kinds. A Src user stands for an
// untagged device of that user, in the groups the policy file lists them
// in and in SrcGroups, with the admin role if SrcAdmin; pass a SrcNode to
// explain a real device.
type Query struct {
	Src     string
	SrcNode *Node
	// SrcGroups and SrcAdmin are a Src user's own groups (from the
	// identity provider or the user record, "eng" or "group:eng") and
	// role, when the caller knows the user.
	SrcGroups []string
	SrcAdmin  bool
	Dst       string
	DstNode   *Node
	// Proto is a protocol name or number; "" means tcp.
	Proto string
	Port  uint16
	// At is the moment of the connection; the zero time matches no rule
	// with a time window.
	At time.Time
	// SrcPostureAttrs are the source's posture attributes when Src is a
	// selector (a SrcNode brings its own Attrs).
	SrcPostureAttrs map[string]string
	// MFAAge is the age of the source owner's last MFA login when Src is a
	// selector; nil means none. A SrcNode brings MFAAt, measured from At.
	MFAAge *time.Duration
	// Grants are the just-in-time grants in force (Graph.Grants). When no
	// rule allows the connection, one of them whose Node is SrcNode, in
	// force at At (any time when At is zero) and whose destination covers
	// the destination and port does (explain_access.go). A Src selector
	// is never a granted device.
	Grants []Grant
}

// RuleRef identifies an acls rule or a grant: its position in its list
// (from 0), its line and column, its text, and which list.
type RuleRef struct {
	Index     int
	Line, Col int
	Text      string
	Section   string // "" for acls, "grants" for a grant, "default" for the default rule
}

func (r RuleRef) String() string {
	switch r.Section {
	case "grants":
		return fmt.Sprintf("grant #%d (line %d)", r.Index+1, r.Line)
	case "default":
		return "the default rule of a policy with neither acls nor grants"
	}
	return fmt.Sprintf("acls rule #%d (line %d)", r.Index+1, r.Line)
}

// Candidate is a rule that did not allow a connection, with every reason.
type Candidate struct {
	Rule    RuleRef
	Reasons []string
}

// Decision is the outcome of Explain: the rule that allowed the
// connection, or the rules that came closest and why each failed.
type Decision struct {
	Allowed bool
	Rule    RuleRef // when Allowed by a rule: the first rule allowing it
	// Grant is the just-in-time grant allowing it, when no rule does.
	Grant      *Grant
	Candidates []Candidate // when denied: up to three closest rules, best first
}

func (d Decision) String() string {
	if d.Allowed && d.Grant != nil {
		return fmt.Sprintf("allowed by grant %s (%s, until %s): %s", d.Grant.ID, d.Grant.Rule,
			d.Grant.Until.UTC().Format(time.RFC3339), d.Grant.Dst)
	}
	if d.Allowed {
		return fmt.Sprintf("allowed by %s: %s", d.Rule, d.Rule.Text)
	}
	if len(d.Candidates) == 0 {
		return "denied: no rule comes close"
	}
	var b strings.Builder
	b.WriteString("denied; closest rules:")
	for _, c := range d.Candidates {
		fmt.Fprintf(&b, "\n  %s: %s", c.Rule, strings.Join(c.Reasons, "; "))
	}
	return b.String()
}

// Explain evaluates one connection symbolically against the policy. It
// fails only when the query itself is malformed.
func (p *Policy) Explain(q Query) (Decision, error) {
	f := &flow{at: q.At}
	var err error
	if f.proto, err = queryProto(q.Proto); err != nil {
		return Decision{}, err
	}
	f.port = q.Port
	switch {
	case q.SrcNode != nil:
		f.src = p.nodeSubject(q.SrcNode)
		if !q.SrcNode.MFAAt.IsZero() && !q.At.IsZero() {
			f.mfaKnown, f.mfaAge = true, q.At.Sub(q.SrcNode.MFAAt)
		}
	case q.Src != "":
		if f.src, err = p.querySubject(q.Src, roleTestSrc); err != nil {
			return Decision{}, err
		}
		f.src.attrs = q.SrcPostureAttrs
		if f.src.user != "" && !f.src.tagged {
			f.src.groups = p.effectiveGroups(f.src.user, q.SrcGroups)
			f.src.admin = q.SrcAdmin
		}
		if q.MFAAge != nil {
			f.mfaKnown, f.mfaAge = true, *q.MFAAge
		}
	default:
		return Decision{}, errors.New("explain: no source given")
	}
	switch {
	case q.DstNode != nil:
		f.dst = p.nodeSubject(q.DstNode)
	case q.Dst != "":
		if f.dst, err = p.querySubject(q.Dst, roleTestDst); err != nil {
			return Decision{}, err
		}
	default:
		return Decision{}, errors.New("explain: no destination given")
	}
	if r, _ := p.allows(f); r != nil {
		return Decision{Allowed: true, Rule: p.ruleRef(r)}, nil
	}
	if q.SrcNode != nil {
		if gr := p.grantAllowing(q.Grants, q.SrcNode.ID, f); gr != nil {
			return Decision{Allowed: true, Grant: gr}, nil
		}
	}
	return Decision{Candidates: p.nearMisses(f, 3)}, nil
}

func queryProto(s string) (int, error) {
	if s == "" {
		return protoTCP, nil
	}
	ps, _, err := parseProto(s)
	if err != nil {
		return 0, fmt.Errorf("explain: %w", err)
	}
	return ps[0], nil
}

// querySubject resolves a selector string given outside a policy file.
func (p *Policy) querySubject(s string, r role) (*subject, error) {
	ps := &parser{diag: newDiag([]byte(s)), p: p}
	v := hujson.Value{Value: hujson.String(s)}
	sel, ok := ps.selector(s, v, 0, r)
	if !ok {
		return nil, fmt.Errorf("explain: %s", ps.errs[0].Message+" ("+ps.errs[0].Hint+")")
	}
	subs := p.subjects(sel)
	if len(subs) != 1 {
		return nil, fmt.Errorf("explain: %s stands for several sources; name one user, tag, host or IP", s)
	}
	return subs[0], nil
}

// subjects returns the hypothetical sources or destinations a test
// selector stands for: a group stands for each member listed in the file
// and for one more member known only to the identity provider.
func (p *Policy) subjects(sel selector) []*subject {
	switch sel.kind {
	case selUser:
		return []*subject{p.userSubject(sel.name, nil, sel.text)}
	case selGroup:
		var out []*subject
		for _, m := range p.groups[sel.name].members {
			out = append(out, p.userSubject(m, nil, m+" (member of "+sel.name+")"))
		}
		idp := p.userSubject("\x00idp member of "+sel.name, []string{sel.name},
			"a member of "+sel.name+" known only to the identity provider")
		return append(out, idp)
	case selTag:
		return []*subject{{isNode: true, tagged: true, tags: []string{sel.name}, label: sel.text}}
	case selPrefix:
		return []*subject{{addrs: []netip.Prefix{sel.prefix}, label: sel.text}}
	}
	return nil
}

func (p *Policy) userSubject(login string, idp []string, label string) *subject {
	return &subject{isNode: true, user: login, groups: p.effectiveGroups(login, idp), label: label}
}
