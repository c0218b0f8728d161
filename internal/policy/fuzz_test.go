package policy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// FuzzParse checks that Parse never panics, is deterministic, reports
// errors at positions inside the file, and that a policy it accepts
// compiles the same incrementally as from scratch.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*.hujson", "../../ops/policy/*.hujson"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(explainPolicy))
	f.Add([]byte(randomPolicies[0]))
	f.Add([]byte(accessPolicy))
	f.Add([]byte(randomPolicies[1]))
	f.Add([]byte(`{"acls": [{"action": "accept", "src": ["user:*@example.com"], "dst": ["user:*@example.org:22"]}],
		"grants": [{"src": ["user:*@a.example"], "dst": ["user:*@b.example"], "ip": ["tcp:22"]}]}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Parse(src)
		p2, err2 := Parse(src)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("Parse is not deterministic: %v / %v", err, err2)
		}
		lines := strings.Count(string(src), "\n") + 1
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range es {
				if e.Line < 1 || e.Line > lines || e.Col < 1 || e.Message == "" {
					t.Fatalf("bad error %+v in a %d-line file", e, lines)
				}
			}
			return
		}
		if p.Hash() != p2.Hash() || len(p.Warnings()) != len(p2.Warnings()) {
			t.Fatal("Parse is not deterministic")
		}
		for _, w := range p.Warnings() {
			if w.Line < 1 || w.Line > lines || w.Col < 1 {
				t.Fatalf("bad warning %+v", w)
			}
		}
		if len(p.rules) > 200 {
			return // compiling is covered elsewhere; keep each input fast
		}
		now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
		nodes := fuzzNodes(now)
		for i := range nodes {
			p.NodeAttrsFor(&nodes[i])
		}
		bulk := NewGraph(p, now, nodes...)
		inc := NewGraph(p, now)
		for _, n := range nodes {
			inc.Upsert(n)
		}
		ids := nodeIDs(nodes)
		if a, b := takeSnapshot(bulk, ids), takeSnapshot(inc, ids); !mapsEqual(a, b) {
			t.Fatalf("bulk and incremental graphs differ:\n%v\n%v", a, b)
		}
		if msg := filtersStayLocal(bulk, nodes); msg != "" {
			t.Fatal(msg)
		}
		inc.Remove(2)
		inc.Advance(now.Add(13 * time.Hour))
		inc.NextChange()
		inc.SetPolicy(p)
		for _, q := range []Query{
			{Src: "ann@example.com", Dst: "100.64.0.3", Port: 22},
			{SrcNode: &nodes[0], DstNode: &nodes[2], Port: 443, At: now},
		} {
			if _, err := p.Explain(q); err != nil {
				t.Fatalf("Explain(%+v): %v", q, err)
			}
		}
	})
}

func fuzzNodes(now time.Time) []Node {
	ann := userNode(1, "ann@example.com")
	ann.Attrs = map[string]string{"node:os": "macos", "node:osVersion": "15.1"}
	ann.MFAAt = now.Add(-time.Hour)
	ann.Groups = []string{"eng", "ops"}
	bob := userNode(2, "bob@example.com")
	bob.Admin = true
	bob.Addresses = addrs(2, true)
	srv := Node{ID: wire.NodeID(3), Addresses: addrs(3, true), Tags: []string{"tag:db", "tag:web", "tag:ci"}}
	// A router of a subnet and an exit node.
	rtr := Node{ID: wire.NodeID(5), Addresses: addrs(5, true), Tags: []string{"tag:web"},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/24"), netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}
	return []Node{ann, bob, srv, userNode(4, "ann@example.com"), rtr}
}

// TestTestdata parses every file in testdata: valid_* must parse,
// invalid_* must not.
func TestTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hujson")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Parse(b)
		switch base := filepath.Base(file); {
		case strings.HasPrefix(base, "valid_") && err != nil:
			t.Errorf("%s: %v", file, err)
		case strings.HasPrefix(base, "invalid_") && err == nil:
			t.Errorf("%s parsed", file)
		}
	}
}
