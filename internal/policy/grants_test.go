package policy

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// sortedFilters renders every node's filter as a sorted set of lines, so
// a grant and the acls rules it rewrites compare as sets.
func sortedFilters(m map[wire.NodeID][]string) map[wire.NodeID][]string {
	out := map[wire.NodeID][]string{}
	for id, f := range m {
		f = slices.Clone(f)
		sort.Strings(f)
		out[id] = f
	}
	return out
}

// TestGrantsCompileLikeACLs: each grant compiles to the same packet
// filters as the acls rules with its meaning.
func TestGrantsCompileLikeACLs(t *testing.T) {
	tests := []struct {
		name   string
		grants string
		acls   string
	}{
		{"every port, default protocols",
			`{"src": ["group:eng"], "dst": ["tag:db"], "ip": ["*"]}`,
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:*"]}`},
		{"bare ports and ranges",
			`{"src": ["ann@example.com"], "dst": ["tag:web", "dbhost"], "ip": ["443", "8000-8010", "22"]}`,
			`{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:web:22,443,8000-8010", "dbhost:22,443,8000-8010"]}`},
		{"protocols by name and number",
			`{"src": ["*"], "dst": ["tag:db"], "ip": ["tcp:5432", "udp:53", "icmp:*", "17:123", "6:*"]}`,
			`{"action": "accept", "src": ["*"], "dst": ["tag:db:*"], "proto": "tcp"},
			 {"action": "accept", "src": ["*"], "dst": ["tag:db:53,123"], "proto": "udp"},
			 {"action": "accept", "src": ["*"], "dst": ["tag:db:*"], "proto": "icmp"}`},
		{"autogroup:self and autogroup:member",
			`{"src": ["autogroup:member"], "dst": ["autogroup:self"], "ip": ["tcp:22"]}`,
			`{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"], "proto": "tcp"}`},
		{"addresses and CIDRs",
			`{"src": ["10.1.0.0/16", "100.64.0.3"], "dst": ["100.64.0.5", "fd7a:115c:a1e0::6"], "ip": ["tcp:80"]}`,
			`{"action": "accept", "src": ["10.1.0.0/16", "100.64.0.3"], "dst": ["100.64.0.5:80", "[fd7a:115c:a1e0::6]:80"], "proto": "tcp"}`},
		{"srcPosture",
			`{"src": ["group:eng"], "dst": ["tag:db"], "ip": ["tcp:5432"], "srcPosture": ["posture:mac"]}`,
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "proto": "tcp", "srcPosture": ["posture:mac"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, _ := compileOne(t, `"grants": [`+tt.grants+`]`)
			a, _ := compileOne(t, `"acls": [`+tt.acls+`]`)
			if len(a) == 0 {
				t.Fatal("the acls version allows nothing; the case tests nothing")
			}
			if got, want := sortedFilters(g), sortedFilters(a); !equalFilters(got, want) {
				t.Fatalf("grant compiles to\n%v\nacls to\n%v", got, want)
			}
		})
	}
}

// TestGrantsAndACLsTogether: both sections apply, and defaultSrcPosture
// covers grants without srcPosture.
func TestGrantsAndACLsTogether(t *testing.T) {
	got, _ := compileOne(t, `"defaultSrcPosture": ["posture:mac"],
		"acls": [{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:db:22"], "srcPosture": []}],
		"grants": [{"src": ["group:eng"], "dst": ["tag:db"], "ip": ["tcp:5432"]}]`)
	want := []string{"100.64.0.1 -> 100.64.0.5:5432 [6]", "100.64.0.3 -> 100.64.0.5:22"}
	if f := sortedFilters(got)[5]; !slices.Equal(f, want) {
		t.Fatalf("filter of tag:db = %q, want %q", f, want)
	}
}

func TestGrantErrors(t *testing.T) {
	tests := []struct {
		name  string
		grant string
		want  string
	}{
		{"via not a tag", `{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["group:eng"]}`, `via "group:eng" is not a tag`},
		{"via to a node", `{"src": ["*"], "dst": ["tag:web"], "ip": ["*"], "via": ["tag:web"]}`, `not to tag:web`},
		{"via undefined tag", `{"src": ["*"], "dst": ["10.0.0.0/8"], "ip": ["*"], "via": ["tag:nope"]}`, `tag "tag:nope" has no tagOwners entry`},
		{"ports in dst", `{"src": ["*"], "dst": ["tag:db:22"], "ip": ["*"]}`, `grant destination "tag:db:22" has ports`},
		{"neither ip nor app", `{"src": ["*"], "dst": ["tag:db"]}`, "grants nothing: ip and app cannot both be empty"},
		{"port list", `{"src": ["*"], "dst": ["tag:db"], "ip": ["tcp:22,80"]}`, "lists several ports"},
		{"ports on icmp", `{"src": ["*"], "dst": ["tag:db"], "ip": ["icmp:8"]}`, "protocol icmp has no ports"},
		{"port 0", `{"src": ["*"], "dst": ["tag:db"], "ip": ["0"]}`, "port 0"},
		{"reversed range", `{"src": ["*"], "dst": ["tag:db"], "ip": ["90-80"]}`, `port range "90-80" ends before it starts`},
		{"unknown protocol", `{"src": ["*"], "dst": ["tag:db"], "ip": ["tpc:22"]}`, `unknown protocol "tpc"`},
		{"empty ip", `{"src": ["*"], "dst": ["tag:db"], "ip": []}`, "ip is empty"},
		{"empty entry", `{"src": ["*"], "dst": ["tag:db"], "ip": [""]}`, `invalid ip entry ""`},
		{"unknown field", `{"src": ["*"], "dst": ["tag:db"], "ip": ["*"], "action": "accept"}`, `unknown field "action" in grant #1`},
		{"no src", `{"dst": ["tag:db"], "ip": ["*"]}`, "grant #1 has no src"},
		{"self with a tag", `{"src": ["tag:web"], "dst": ["autogroup:self"], "ip": ["*"]}`, "autogroup:self as a destination needs sources"},
		{"unknown posture", `{"src": ["*"], "dst": ["tag:db"], "ip": ["*"], "srcPosture": ["posture:nope"]}`, `unknown posture "posture:nope"`},
		{"app not an object", `{"src": ["*"], "dst": ["tag:db"], "app": []}`, "must be an object"},
		{"app values not a list", `{"src": ["*"], "dst": ["tag:db"], "app": {"example.com/cap/x": {}}}`, "must be an array"},
		// Refusals recorded from Tailscale's control plane (conformance
		// cases grant-a2, a5, h1, h9, v01, v04, v05).
		{"capability without a domain", `{"src": ["*"], "dst": ["tag:db"], "app": {"https://example.com/cap/x": [{}]}}`, "must have the form {domain}/{path}"},
		{"unknown tailscale.com capability", `{"src": ["*"], "dst": ["tag:db"], "app": {"tailscale.com/cap/funnel": [{}]}}`, "in the tailscale.com domain"},
		{"empty app", `{"src": ["*"], "dst": ["tag:db"], "app": {}}`, "ip and app cannot both be empty"},
		{"app to self from *", `{"src": ["*"], "dst": ["autogroup:self"], "app": {"example.com/cap/x": [{}]}}`, "autogroup:self as a destination needs sources"},
		{"app to the internet", `{"src": ["*"], "dst": ["autogroup:internet"], "app": {"example.com/cap/x": [{}]}}`, "cannot go to autogroup:internet"},
		{"every IPv4 address", `{"src": ["*"], "dst": ["0.0.0.0/0"], "ip": ["*"]}`, `grant destination "0.0.0.0/0" is every address`},
		{"every IPv6 address", `{"src": ["*"], "dst": ["::/0"], "ip": ["*"]}`, `grant destination "::/0" is every address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte("{" + compileHeader + `"grants": [` + tt.grant + `]}`))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestGrantApp: app capabilities are stored, delivered to the
// destination only (TestGrantAppDelivered has the cases), reported as not
// acted on, and grant no network access.
func TestGrantApp(t *testing.T) {
	got, p := compileOne(t, `"grants": [{"src": ["group:eng"], "dst": ["tag:db"],
		"app": {"example.com/cap/db": [{"role": "reader", "dbs": ["a", "b"]}, 7], "example.com/cap/other": []}}]`)
	want := map[wire.NodeID][]string{5: {"100.64.0.1,100.64.0.2,100.64.0.3,100.64.0.4 -> caps 100.64.0.5 [example.com/cap/db example.com/cap/other]"}}
	if !equalFilters(got, want) {
		t.Fatalf("an app-only grant compiles to %v, want only capabilities: %v", got, want)
	}
	apps := p.AppGrants()
	if len(apps) != 1 {
		t.Fatalf("AppGrants = %v, want one", apps)
	}
	a := apps[0]
	if !slices.Equal(a.Src, []string{"group:eng"}) || !slices.Equal(a.Dst, []string{"tag:db"}) || len(a.Caps) != 2 {
		t.Fatalf("AppGrant = %+v", a)
	}
	vals := a.Caps["example.com/cap/db"]
	if len(vals) != 2 || string(vals[0]) != `{"role":"reader","dbs":["a","b"]}` || string(vals[1]) != "7" {
		t.Fatalf("values = %q", vals)
	}
	vals[0][0] = 'X' // the caller's copy
	if string(p.AppGrants()[0].Caps["example.com/cap/db"][0]) == string(vals[0]) {
		t.Fatal("AppGrants shares memory with the policy")
	}
	var warned bool
	for _, w := range p.Warnings() {
		warned = warned || strings.Contains(w.Message, "app capabilities are delivered to the destination nodes; Warren's node does not act on them yet")
	}
	if !warned {
		t.Fatalf("no warning that Warren's node does not act on app capabilities: %v", p.Warnings())
	}
}

// TestGrantsInTestsAndExplain: the tests section and Explain see grants,
// and name them as grants.
func TestGrantsInTestsAndExplain(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:db": []},
		"grants": [{"src": ["ann@example.com"], "dst": ["tag:db"], "ip": ["tcp:5432"]}],
		"tests": [{"src": "ann@example.com", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]}]}`)
	d, err := p.Explain(Query{Src: "ann@example.com", Dst: "tag:db", Port: 5432})
	if err != nil || !d.Allowed || !strings.HasPrefix(d.Rule.String(), "grant #1") {
		t.Fatalf("Explain = %v, %v; want allowed by grant #1", d, err)
	}
	_, err = Parse([]byte(`{"tagOwners": {"tag:db": []},
		"grants": [{"src": ["ann@example.com"], "dst": ["tag:db"], "ip": ["udp:5432"]}],
		"tests": [{"src": "ann@example.com", "accept": ["tag:db:5432"]}]}`))
	if err == nil {
		t.Fatal("a tcp test passed against a udp-only grant")
	}
}

// TestGrantShadowWarnings: the rules one grant compiles to are not
// reported as shadowing each other, but a grant another covers is.
func TestGrantShadowWarnings(t *testing.T) {
	_, p := compileOne(t, `"grants": [
		{"src": ["*"], "dst": ["tag:db"], "ip": ["*", "tcp:443"]},
		{"src": ["group:eng"], "dst": ["tag:db"], "ip": ["tcp:22"]},
	]`)
	var ws []string
	for _, w := range p.Warnings() {
		ws = append(ws, w.Message)
	}
	if len(ws) != 1 || !strings.HasPrefix(ws[0], "grant #2 allows nothing that grant #1") {
		t.Fatalf("warnings %q, want one: grant #2 shadowed by grant #1", ws)
	}
}

// FuzzGrantIP checks parseProtoPorts never panics and that what it
// accepts is well formed and agrees with what it was given.
func FuzzGrantIP(f *testing.F) {
	for _, s := range []string{"*", "443", "8000-8010", "tcp:443", "udp:*", "icmp:*", "6:80", "*:22", "tcp:22,80", "icmp:8", "0", "90-80", "", ":", "tcp:", "255:*", "256:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		proto, pr, hint, err := parseProtoPorts(s)
		if err != nil {
			if hint == "" {
				t.Fatalf("%q: error %v without a hint", s, err)
			}
			return
		}
		if proto < -1 || proto > 255 || pr.first > pr.last {
			t.Fatalf("%q: proto %d ports %v", s, proto, pr)
		}
		if pr != allPorts[0] && (pr.first == 0 || strings.Contains(s, ",")) {
			t.Fatalf("%q accepted as %v", s, pr)
		}
		if proto >= 0 && !hasPorts(proto) && pr != allPorts[0] {
			t.Fatalf("%q: ports on protocol %d", s, proto)
		}
	})
}

// TestGrantEmptySrcOrDst: Tailscale accepts a grant with an empty src or
// dst (conformance cases grant-h4, grant-h5); it allows nothing, and
// Warren says so in a warning.
func TestGrantEmptySrcOrDst(t *testing.T) {
	for _, g := range []string{
		`{"src": [], "dst": ["tag:db"], "ip": ["*"]}`,
		`{"src": ["*"], "dst": [], "ip": ["*"]}`,
	} {
		p, err := Parse([]byte("{" + compileHeader + `"grants": [` + g + `]}`))
		if err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if w := outcome(p, nil); !strings.Contains(w, "the grant allows nothing") {
			t.Fatalf("%s: warnings %q", g, w)
		}
		got, _ := compileOne(t, `"grants": [`+g+`]`)
		for id, f := range sortedFilters(got) {
			if len(f) > 0 {
				t.Fatalf("%s: node %v has filter %v", g, id, f)
			}
		}
	}
}
