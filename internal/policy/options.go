package policy

import (
	"github.com/tailscale/hujson"

	"github.com/warrenmesh/warren/internal/wire"
)

// Tailscale's top-level sections that Warren accepts but does not (yet)
// act on: autoApprovers, nodeAttrs, ssh and sshTests (each in its own
// file), and the tailnet-wide options below. Each is validated as
// Tailscale validates it and stored, and whatever has no effect in Warren
// is named in a warning, so a file never silently means less than it says.

// extFields are the top-level fields this file and its siblings read.
var extFields = []string{"autoApprovers", "nodeAttrs", "ssh", "sshTests",
	"randomizeClientPort", "disableIPv4", "OneCGNATRoute", "derpMap", "flowLogs"}

// extSections holds what Parse read from the sections above.
type extSections struct {
	autoApprovers *AutoApprovers
	nodeAttrs     []NodeAttr
	ssh           []*sshRule
	sshTests      []*sshTest
	options       Options
}

// Options are Tailscale's tailnet-wide options found in the policy.
// None of them changes anything in Warren today; Parse warns about each
// one that is set.
type Options struct {
	// RandomizeClientPort: Tailscale's nodes pick a random UDP port
	// instead of 41641. Warren's nodes pick a random port on first start
	// (unless one is configured) whatever the policy says.
	RandomizeClientPort bool
	// DisableIPv4: Tailscale stops assigning 100.x addresses. Warren
	// always assigns both families.
	DisableIPv4 bool
	// OneCGNATRoute is Tailscale's macOS routing hint ("", "mac-always"
	// or "mac-never").
	OneCGNATRoute string
	// HasDERPMap says the file carries a derpMap; Warren's relays are
	// coordinator configuration, so it is ignored.
	HasDERPMap bool
	// FlowLogsOff is Warren's "flowLogs": false: no node records flow
	// logs. Every node's CapMap then carries AttrFlowLogsOff, which is
	// also how a nodeAttrs entry turns them off for some nodes only.
	FlowLogsOff bool
}

// AttrFlowLogsOff is the node attribute (nodeAttrs "attr", delivered in
// the node's own CapMap) that stops the node recording flow logs. The
// top-level "flowLogs": false gives it to every node.
const AttrFlowLogsOff = wire.AttrFlowLogsOff

// Options returns the tailnet-wide options the file sets.
func (p *Policy) Options() Options { return p.ext.options }

// extSections reads the sections above; definitions (groups, tags, hosts)
// are read already.
func (ps *parser) extSections(fields map[string]hujson.Value) {
	if v, ok := fields["autoApprovers"]; ok {
		ps.autoApprovers(v)
	}
	if v, ok := fields["nodeAttrs"]; ok {
		ps.nodeAttrs(v)
	}
	if v, ok := fields["ssh"]; ok {
		ps.sshSection(v)
	}
	if v, ok := fields["sshTests"]; ok {
		ps.sshTestsSection(v)
	}
	o := &ps.p.ext.options
	if v, ok := fields["randomizeClientPort"]; ok {
		if o.RandomizeClientPort, ok = ps.boolean(v, "randomizeClientPort"); ok && o.RandomizeClientPort {
			ps.warnf(v.StartOffset, "remove it; Warren's nodes pick a random UDP port on first start unless configured otherwise",
				"randomizeClientPort: accepted, has no effect in Warren")
		}
	}
	if v, ok := fields["disableIPv4"]; ok {
		if o.DisableIPv4, ok = ps.boolean(v, "disableIPv4"); ok && o.DisableIPv4 {
			ps.warnf(v.StartOffset, "remove it; Warren always assigns IPv4 and IPv6 mesh addresses",
				"disableIPv4: accepted, has no effect in Warren")
		}
	}
	if v, ok := fields["OneCGNATRoute"]; ok {
		if s, ok := ps.str(v, "OneCGNATRoute"); ok {
			switch s {
			case "", "mac-always", "mac-never":
				o.OneCGNATRoute = s
				if s != "" {
					ps.warnf(v.StartOffset, "remove it; Warren's TUN mode always routes 100.64.0.0/10 as one route",
						"OneCGNATRoute: accepted, has no effect in Warren")
				}
			default:
				ps.errorf(v.StartOffset, `write "mac-always", "mac-never" or ""`, "invalid OneCGNATRoute %q", s)
			}
		}
	}
	if v, ok := fields["flowLogs"]; ok {
		if on, ok := ps.boolean(v, "flowLogs"); ok && !on {
			o.FlowLogsOff = true
			all := selector{kind: selAll, text: "*"}
			ps.p.ext.nodeAttrs = append(ps.p.ext.nodeAttrs, NodeAttr{Target: []string{"*"}, Attr: []string{AttrFlowLogsOff}, sels: []selector{all}})
		}
	}
	if v, ok := fields["derpMap"]; ok {
		if _, ok := ps.object(v, "derpMap"); ok {
			o.HasDERPMap = true
			ps.warnf(v.StartOffset, "configure relays on the coordinator (see the README's relay section) and remove it",
				"derpMap: accepted, has no effect in Warren")
		}
	}
}

// boolean reads a true or false literal.
func (ps *parser) boolean(v hujson.Value, what string) (bool, bool) {
	l, ok := v.Value.(hujson.Literal)
	if !ok || (l.Kind() != 't' && l.Kind() != 'f') {
		ps.errorf(v.StartOffset, "write true or false", "%s must be a boolean, not %s", what, kindName(v))
		return false, false
	}
	return l.Kind() == 't', true
}
