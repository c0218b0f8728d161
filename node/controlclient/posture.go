package controlclient

import (
	"maps"
	"strings"

	"github.com/warrenmesh/warren/internal/wire"
)

// postureState is the node's latest posture as SetPosture recorded it;
// Client.mu guards it.
type postureState struct {
	attrs map[string]wire.PostureValue // node: attributes only; nil before the first report
	gen   uint64                       // counts changes of the values
	beats uint64                       // counts collections that changed nothing
}

// postureSent is how far a session has sent the posture.
type postureSent struct{ gen, beats uint64 }

// full returns the whole report for a map request (nil before the first
// collection), and that it covers every change and heartbeat so far.
func (p *postureState) full() (*wire.PostureReport, postureSent) {
	now := postureSent{p.gen, p.beats}
	if p.attrs == nil {
		return nil, now
	}
	return &wire.PostureReport{Attrs: maps.Clone(p.attrs)}, now
}

// next returns what a session that has sent up to sent must send now: the
// whole report when the values changed, a heartbeat when a collection
// changed nothing, or nil.
func (p *postureState) next(sent postureSent) (*wire.PostureReport, postureSent) {
	now := postureSent{p.gen, p.beats}
	switch {
	case p.gen != sent.gen && p.attrs != nil:
		return &wire.PostureReport{Attrs: maps.Clone(p.attrs)}, now
	case p.beats != sent.beats:
		return &wire.PostureReport{Unchanged: true}, now
	}
	return nil, sent
}

// SetPosture records the attributes the node just collected and signals
// the running session, which sends them; it never blocks on the network.
// Only node: attributes are kept (a node never reports custom: ones).
// When the values are those recorded last, the session sends a heartbeat
// ("unchanged") instead of the report; a session that starts later sends
// the whole report with its map request.
func (c *Client) SetPosture(attrs map[string]wire.PostureValue) {
	kept := make(map[string]wire.PostureValue, len(attrs))
	for name, v := range attrs {
		if strings.HasPrefix(name, "node:") {
			kept[name] = v
		} else {
			c.log.Warn("posture: not reporting an attribute a node may not set", "name", name)
		}
	}
	c.mu.Lock()
	p := &c.posture
	same := p.attrs != nil && maps.EqualFunc(p.attrs, kept, func(a, b wire.PostureValue) bool { return a.Value == b.Value })
	p.attrs = kept
	if same {
		p.beats++
	} else {
		p.gen++
	}
	c.mu.Unlock()
	c.signal()
}

// Posture returns the attributes recorded last (nil before the first).
func (c *Client) Posture() map[string]wire.PostureValue {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.posture.attrs)
}
