package policy

import (
	"github.com/warrenmesh/warren/internal/wire"
)

// grantAllowing returns the first grant (in the given order) of node src
// that allows f: in force at f.at (any time when it is zero), for a
// protocol a grant's filter rule allows (TCP, UDP, ICMP), and whose
// destination, parsed under p, selects f's destination on f's port. A
// destination behind a subnet router is never granted (as in the graph).
func (p *Policy) grantAllowing(grants []Grant, src wire.NodeID, f *flow) *Grant {
	if !containsProto(defaultProtos, f.proto) {
		return nil
	}
	for i := range grants {
		gr := &grants[i]
		if gr.Node != src || (!f.at.IsZero() && !f.at.Before(gr.Until)) {
			continue
		}
		ds, err := p.parseDst(gr.Dst)
		if err != nil {
			continue
		}
		for j := range ds {
			d := &ds[j]
			if d.sel.matches(f.dst) && (!hasPorts(f.proto) || inPorts(d.ports, f.port)) {
				out := *gr
				return &out
			}
		}
	}
	return nil
}
