package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// Node is a node as the policy sees it.
type Node struct {
	ID        wire.NodeID
	Addresses []netip.Prefix    // mesh addresses (/32 and /128)
	User      string            // owner's login; "" for tagged nodes
	Groups    []string          // owner's identity-provider groups ("eng" or "group:eng")
	Admin     bool              // owner has the admin role
	Tags      []string          // non-empty: a tagged node, owned by its tags
	Attrs     map[string]string // posture attributes: "node:os" -> "macos"
	MFAAt     time.Time         // owner's last MFA login; zero: never
	// Routes are the node's approved routes: subnets it forwards to, and
	// 0.0.0.0/0 and ::/0 when it is an approved exit node (Tailscale's
	// data model). Advertised but unapproved routes are not listed.
	Routes []netip.Prefix
}

// nodeSubject is n as rules see it. A tagged node has no user.
func (p *Policy) nodeSubject(n *Node) *subject {
	s := &subject{isNode: true, attrs: n.Attrs, admin: n.Admin, label: fmt.Sprintf("node %d", n.ID)}
	if len(n.Tags) > 0 {
		s.tagged, s.tags = true, n.Tags
	} else {
		s.user = strings.ToLower(n.User)
		if s.user != "" {
			s.groups = p.effectiveGroups(s.user, n.Groups)
			s.label = fmt.Sprintf("node %d (%s)", n.ID, n.User)
		}
	}
	s.routes = normalRoutes(n.Routes)
	for _, a := range n.Addresses {
		addr := a.Addr().Unmap()
		if addr.IsValid() {
			s.addrs = append(s.addrs, netip.PrefixFrom(addr, addr.BitLen()))
		}
	}
	return s
}
