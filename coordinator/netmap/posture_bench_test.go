package netmap

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// The posture benchmark's mesh: 9,000 devices of 3,000 users in 100
// groups and 1,000 tagged servers under 100 tags; 500 rules from groups
// to tags, 50 of them gated on posture:managed.
const (
	postureNodes   = 10000
	postureServers = 1000
	postureUsers   = 3000
	postureGroups  = 100
	postureTags    = 100
	postureRules   = 500
	postureGated   = 50
	// postureLaptop is a device in group:g50, the source of gated rule
	// 450 (to tag:t50:5432).
	postureLaptop = 50
)

func posturePolicyText() string {
	var b strings.Builder
	b.WriteString(`{"postures": {"posture:managed": ["node:diskEncrypted == true", "node:osVersion >= '6.1'"]}, "groups": {`)
	for g := range postureGroups {
		fmt.Fprintf(&b, `"group:g%d": [], `, g)
	}
	b.WriteString(`}, "tagOwners": {`)
	for t := range postureTags {
		fmt.Fprintf(&b, `"tag:t%d": [], `, t)
	}
	b.WriteString(`}, "acls": [`)
	for r := range postureRules {
		if r < postureRules-postureGated {
			fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:%d"]},`, r%postureGroups, (r+r/postureGroups)%postureTags, 1000+r)
		} else {
			fmt.Fprintf(&b, `{"action": "accept", "src": ["group:g%d"], "dst": ["tag:t%d:5432"], "srcPosture": ["posture:managed"]},`, r%postureGroups, r%postureTags)
		}
	}
	b.WriteString(`]}`)
	return b.String()
}

// postureNode is node id of the benchmark's mesh (with new keys).
func postureNode(id int) Node {
	if id > postureNodes-postureServers {
		return testNode(id, 0, fmt.Sprintf("tag:t%d", id%postureTags))
	}
	u := id % postureUsers
	n := testNode(id, int64(u))
	n.Groups = []string{fmt.Sprintf("g%d", u%postureGroups)}
	return withPosture(n, true)
}

// withPosture is n reporting an encrypted disk or not.
func withPosture(n Node, encrypted bool) Node {
	v := fmt.Sprint(encrypted)
	at := time.Unix(1_700_000_000, 0).UTC()
	n.Attrs = map[string]string{"node:diskEncrypted": v, "node:osVersion": "6.8"}
	n.PostureAttrs = []wire.PostureAttr{
		{Name: "node:diskEncrypted", Value: v, Source: "node", CollectedAt: at},
		{Name: "node:osVersion", Value: "6.8", Source: "node", CollectedAt: at},
	}
	return n
}

// BenchmarkPostureChange measures one device's posture change in a
// 10,000-node mesh with 500 rules, 50 of them posture-gated: the engine
// applying it (Upsert with the new attributes) and every affected stream
// building the response it reads, encoded as a wire frame. deltas/op is
// how many nodes got one. The baselines in the same run: the same
// device's new endpoints (a patch to its peers), and a change of an
// attribute no posture reads.
func BenchmarkPostureChange(b *testing.B) {
	e := New(Config{Policy: mustPolicy(b, posturePolicyText()), MaxQueue: 1 << 20})
	laptop := postureNode(postureLaptop)
	for id := 1; id <= postureNodes; id++ {
		if id == postureLaptop {
			e.Upsert(laptop)
		} else {
			e.Upsert(postureNode(id))
		}
	}
	streams := make([]*Stream, 0, postureNodes)
	for id := 1; id <= postureNodes; id++ {
		s, err := e.Subscribe(wire.NodeID(id))
		if err != nil {
			b.Fatal(err)
		}
		s.mu.Lock()
		s.needFull = false // pretend the full map went out already
		s.mu.Unlock()
		streams = append(streams, s)
	}
	ctx := context.Background()
	deliver := func(b *testing.B) int {
		reached := 0
		for _, s := range streams {
			if s.Pending() == 0 {
				continue
			}
			resp, err := s.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := wire.Encode(resp); err != nil {
				b.Fatal(err)
			}
			reached++
		}
		return reached
	}
	for _, tc := range []struct {
		name   string
		change func(i int)
	}{
		{"posture", func(i int) { e.Upsert(withPosture(laptop, i%2 == 1)) }},
		{"baseline=endpoints", func(i int) {
			ep := []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(1000+i%1000))}
			if err := e.SetEndpoints(postureLaptop, ep, i); err != nil {
				b.Fatal(err)
			}
		}},
		{"baseline=unusedAttr", func(i int) {
			n := withPosture(laptop, true)
			n.Attrs["node:hostname"] = fmt.Sprint("laptop-", i)
			e.Upsert(n)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e.Upsert(withPosture(laptop, true))
			deliver(b)
			total := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				tc.change(i)
				total += deliver(b)
			}
			b.ReportMetric(float64(total)/float64(b.N), "deltas/op")
		})
	}
}
