package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/filter"
	"github.com/warrenmesh/warren/node/localapi"
)

// tcpProto is IP protocol number 6, as filter rules list protocols.
const tcpProto = 6

// WhoIs implements localapi.Backend: who is behind addr, answered from
// the netmap. addr is a mesh address (with PORT, the node's port the
// connection came to) or the local address of a connection --expose made
// to a service (IP:PORT as the service sees its client).
func (d *Daemon) WhoIs(ctx context.Context, addr string) (localapi.WhoIs, error) {
	var ap netip.AddrPort
	a, err := netip.ParseAddr(addr)
	if err != nil {
		if ap, err = netip.ParseAddrPort(addr); err != nil {
			return localapi.WhoIs{}, fmt.Errorf("%w: addr %q: want IP or IP:PORT, e.g. 100.64.0.2 or 127.0.0.1:51234", localapi.ErrBadRequest, addr)
		}
		a = ap.Addr()
	}
	a = a.Unmap()
	ap = netip.AddrPortFrom(a, ap.Port())
	_, nm, err := d.running()
	if err != nil {
		return localapi.WhoIs{}, err
	}
	out := localapi.WhoIs{Address: addr, Via: "mesh", Port: ap.Port()}
	var n wire.Node
	src := a
	if c, ok := d.exposed.Lookup(ap); ok && ap.Port() != 0 {
		if n, ok = nm.Peer(c.Node); !ok {
			return localapi.WhoIs{}, fmt.Errorf("%w: %s came through --expose %d from %s, a node no longer in the netmap", localapi.ErrNotFound, addr, c.Port, c.Src)
		}
		out.MeshSource, out.Port, src = c.Src, c.Port, c.Src.Addr()
		out.Via = fmt.Sprintf("expose %d %s", c.Port, c.Mode)
	} else {
		switch {
		case !isMeshAddr(a) && ap.Port() != 0:
			return localapi.WhoIs{}, fmt.Errorf("%w: %s is no connection warrend --expose made to a service on this host (it may have closed), nor a mesh address", localapi.ErrNotFound, addr)
		case holds(nm.Self, a):
			n, out.Self = nm.Self, true
		default:
			if n, ok = nm.PeerByAddr(a); !ok {
				return localapi.WhoIs{}, fmt.Errorf("%w: %s", localapi.ErrNotFound, localapi.NotVisible("address "+a.String()))
			}
		}
	}
	out.Node = localapi.WhoIsNode{ID: int64(n.ID), Name: n.Name, DNSName: n.Name + "." + nm.Domain, Hostname: n.Hostname,
		Addresses: n.Addresses, Online: n.Online || out.Self, KeyExpiry: n.KeyExpiry}
	out.Tags, out.Groups, out.Postures = n.Tags, n.Groups, n.Postures
	if len(n.Tags) == 0 {
		out.User, out.UserName = n.User, n.UserName
	}
	if out.Port != 0 && !out.Self {
		out.Rule = admittingRule(nm, src, out.Port)
	}
	return out, nil
}

func holds(n wire.Node, a netip.Addr) bool {
	return slices.ContainsFunc(n.Addresses, func(p netip.Prefix) bool { return p.Addr() == a })
}

// admittingRule names the first packet filter rule that lets src connect
// over TCP to port on one of this node's addresses of src's family, as
// the node's filter decides; "" when none does.
func admittingRule(nm *controlclient.Netmap, src netip.Addr, port uint16) string {
	for _, self := range nm.Self.Addresses {
		if self.Addr().Is4() != src.Is4() {
			continue
		}
		if id, ok := filter.RuleFor(nm.PacketFilter, src, self.Addr(), tcpProto, port); ok {
			if id == "" {
				return "(a rule the coordinator did not name)"
			}
			return id
		}
	}
	return ""
}
