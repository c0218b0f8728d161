package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const compileNodes = "testdata/compile/nodes.json"

func compileJSON(t *testing.T, args ...string) compiled {
	t.Helper()
	out, err := runCLI(t, append([]string{"policy", "compile", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("policy compile %v: %v\n%s", args, err, out)
	}
	var c compiled
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	return c
}

func hasRule(n compiledNode, want compiledRule) bool {
	for _, r := range n.Filter {
		if reflect.DeepEqual(r, want) {
			return true
		}
	}
	return false
}

// TestPolicyCompileExample compiles ops/policy/example.hujson for an
// inventory and checks what each kind of rule gives (the inventory also
// has an unknown field and bare addresses, which must be accepted).
func TestPolicyCompileExample(t *testing.T) {
	example := filepath.Join("..", "..", "ops", "policy", "example.hujson")
	// In the contractors' window (Tokyo office hours) on a Wednesday.
	c := compileJSON(t, "--file", example, "--nodes", compileNodes, "--at", "2026-11-25T10:00:00+09:00")
	if len(c.Nodes) != 6 {
		t.Fatalf("got %d nodes, want 6", len(c.Nodes))
	}
	db, web, bob := c.Nodes["db1"], c.Nodes["web1"], c.Nodes["bob-laptop"]
	for _, want := range []compiledRule{
		// tag:web -> tag:db:5432, on both of db1's addresses.
		{Src: []string{"100.64.0.6/32"}, Dst: []compiledDst{{"100.64.0.5/32", "5432-5432"}, {"fd7a:115c:a1e0::5/128", "5432-5432"}}},
		// group:eng with a posture: only ann's laptop passes latestMac.
		{Src: []string{"100.64.0.1/32", "fd7a:115c:a1e0::1/128"}, Dst: []compiledDst{{"100.64.0.5/32", "5432-5432"}, {"fd7a:115c:a1e0::5/128", "5432-5432"}}},
		// monitoring, icmp only; "*" on db1 also covers its approved
		// route 10.33.0.0/16.
		{Src: []string{"100.64.1.0/24"}, Dst: []compiledDst{{"10.33.0.0/16", "0-65535"}, {"100.64.0.5/32", "0-65535"}, {"fd7a:115c:a1e0::5/128", "0-65535"}}, Protos: []string{"icmp"}},
	} {
		if !hasRule(db, want) {
			t.Errorf("db1 filter lacks %+v; got %+v", want, db.Filter)
		}
	}
	if len(db.Filter) != 4 {
		t.Errorf("db1 has %d filter entries, want 4 (no ssh from ops: carol has no MFA): %+v", len(db.Filter), db.Filter)
	}
	if !hasRule(web, compiledRule{Src: []string{"100.64.0.7/32"}, Dst: []compiledDst{{"100.64.0.6/32", "22-22"}, {"100.64.0.6/32", "8000-8999"}}}) {
		t.Errorf("web1 lacks tag:ci's ports: %+v", web.Filter)
	}
	if want := []string{"ann-laptop", "bob-laptop", "carol-laptop", "ci1", "db1"}; !reflect.DeepEqual(web.Peers, want) {
		t.Errorf("web1 peers = %v, want %v", web.Peers, want)
	}
	if want := []string{"web1"}; !reflect.DeepEqual(bob.Peers, want) {
		t.Errorf("bob-laptop peers = %v, want %v", bob.Peers, want)
	}
	if c.Nodes["ci1"].Filter == nil || c.Nodes["ci1"].Peers == nil {
		t.Error("empty lists must be [], not null")
	}

	// The readable form names every node and says "*" for all ports.
	out := mustCLI(t, "policy", "compile", "--file", example, "--nodes", compileNodes)
	for _, want := range []string{"db1\n  peers: ann-laptop, web1\n", "to 100.64.0.6/32:22, 100.64.0.6/32:8000-8999  (tcp, udp, icmp)", "to 10.33.0.0/16:*, 100.64.0.5/32:*, fd7a:115c:a1e0::5/128:*  (icmp)"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// readmeExample returns the first ```hujson block of the README's policy
// section.
func readmeExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## Policy: who may reach what")
	if !ok {
		t.Fatal("README has no policy section")
	}
	_, blk, ok := strings.Cut(sec, "```hujson\n")
	if !ok {
		t.Fatal("README's policy section has no hujson block")
	}
	blk, _, _ = strings.Cut(blk, "```")
	return blk
}

// TestPolicyCompileREADME compiles the README's example and checks the
// whole output, and the --diff of a one-line change to it.
func TestPolicyCompileREADME(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.hujson")
	must(t, os.WriteFile(old, []byte(readmeExample(t)), 0o600))
	c := compileJSON(t, "--file", old, "--nodes", compileNodes)
	annAddrs := []string{"100.64.0.1/32", "fd7a:115c:a1e0::1/128"}
	want := compiledNode{
		Filter: []compiledRule{{Src: annAddrs, Dst: []compiledDst{{"100.64.0.5/32", "5432-5432"}, {"fd7a:115c:a1e0::5/128", "5432-5432"}}}},
		Peers:  []string{"ann-laptop"},
	}
	if !reflect.DeepEqual(c.Nodes["db1"], want) {
		t.Errorf("db1 = %+v, want %+v", c.Nodes["db1"], want)
	}
	if want := (compiledNode{Filter: []compiledRule{}, Peers: []string{"db1"}}); !reflect.DeepEqual(c.Nodes["ann-laptop"], want) {
		t.Errorf("ann-laptop = %+v, want %+v", c.Nodes["ann-laptop"], want)
	}
	for _, n := range []string{"bob-laptop", "carol-laptop", "web1", "ci1"} {
		if len(c.Nodes[n].Filter) != 0 || len(c.Nodes[n].Peers) != 0 {
			t.Errorf("%s = %+v, want nothing (bob is not in group:eng in the README example)", n, c.Nodes[n])
		}
	}

	// One line changes: bob, not an engineer, also reaches the databases.
	nw := filepath.Join(dir, "new.hujson")
	src := strings.Replace(readmeExample(t), `"src": ["group:eng"]`, `"src": ["group:eng", "bob@example.com"]`, 1)
	must(t, os.WriteFile(nw, []byte(src), 0o600))
	out := mustCLI(t, "policy", "compile", "--diff", old, nw, "--nodes", compileNodes)
	wantDiff := "bob-laptop\n" +
		"  + peer db1\n" +
		"db1\n" +
		"  + 100.64.0.2/32 -> 100.64.0.5/32:5432 (tcp, udp, icmp)\n" +
		"  + fd7a:115c:a1e0::2/128 -> 100.64.0.5/32:5432 (tcp, udp, icmp)\n" +
		"  + 100.64.0.2/32 -> fd7a:115c:a1e0::5/128:5432 (tcp, udp, icmp)\n" +
		"  + fd7a:115c:a1e0::2/128 -> fd7a:115c:a1e0::5/128:5432 (tcp, udp, icmp)\n" +
		"  + peer bob-laptop\n"
	if out != wantDiff {
		t.Errorf("--diff output:\n%s\nwant:\n%s", out, wantDiff)
	}
	// And back: the same access, removed.
	out = mustCLI(t, "policy", "compile", "--diff", nw, old, "--nodes", compileNodes, "--json")
	var d compiledDiff
	must(t, json.Unmarshal([]byte(out), &d))
	if len(d.Nodes) != 2 || len(d.Nodes["db1"].Removed) != 4 || len(d.Nodes["bob-laptop"].PeersRemoved) != 1 {
		t.Errorf("reverse --diff --json = %s", out)
	}
	if out := mustCLI(t, "policy", "compile", "--diff", old, old, "--nodes", compileNodes); !strings.HasPrefix(out, "no change") {
		t.Errorf("--diff of a file with itself = %q", out)
	}
}

// TestPolicyCompileExitStatus: 0 ok, 1 a rejected policy (with its
// errors printed), 2 usage and input errors.
func TestPolicyCompileExitStatus(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hujson")
	must(t, os.WriteFile(good, []byte(readmeExample(t)), 0o600))
	bad := filepath.Join(dir, "bad.hujson")
	must(t, os.WriteFile(bad, []byte(`{"acls": [{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}]}`), 0o600))
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(s), 0o600))
		return p
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string // in stdout, or in the error
	}{
		{"ok", []string{"--file", good, "--nodes", compileNodes}, 0, "db1"},
		{"rejected", []string{"--file", bad, "--nodes", compileNodes}, 1, `unknown group "group:nope"`},
		{"rejected json", []string{"--file", bad, "--nodes", compileNodes, "--json"}, 1, `"errors"`},
		{"rejected in diff", []string{"--diff", good, bad, "--nodes", compileNodes}, 1, "REJECTED"},
		{"no nodes", []string{"--file", good}, 2, "--nodes"},
		{"no file", []string{"--nodes", compileNodes}, 2, "usage"},
		{"diff needs two", []string{"--diff", good, "--nodes", compileNodes}, 2, "usage"},
		{"unknown flag", []string{"--file", good, "--nodes", compileNodes, "--bogus"}, 2, "bogus"},
		{"missing policy", []string{"--file", filepath.Join(dir, "none"), "--nodes", compileNodes}, 2, "no such file"},
		{"missing nodes", []string{"--file", good, "--nodes", filepath.Join(dir, "none")}, 2, "no such file"},
		{"nodes not json", []string{"--file", good, "--nodes", write("n1.json", "[1,")}, 2, "not a nodes file"},
		{"node without name", []string{"--file", good, "--nodes", write("n2.json", `{"nodes": [{"user": "a@b", "addresses": ["100.64.0.1"]}]}`)}, 2, "no name"},
		{"duplicate name", []string{"--file", good, "--nodes", write("n3.json", `{"nodes": [{"name": "a", "user": "a@b", "addresses": ["100.64.0.1"]}, {"name": "a", "user": "a@b", "addresses": ["100.64.0.2"]}]}`)}, 2, "twice"},
		{"user and tags", []string{"--file", good, "--nodes", write("n4.json", `{"nodes": [{"name": "a", "user": "a@b", "tags": ["tag:db"], "addresses": ["100.64.0.1"]}]}`)}, 2, "either a user or tags"},
		{"subnet as address", []string{"--file", good, "--nodes", write("n5.json", `{"nodes": [{"name": "a", "user": "a@b", "addresses": ["100.64.0.0/24"]}]}`)}, 2, "not one address"},
		{"bad route", []string{"--file", good, "--nodes", write("n6.json", `{"nodes": [{"name": "a", "user": "a@b", "addresses": ["100.64.0.1"], "routes": ["10.0.0.1/8"]}]}`)}, 2, "route"},
		{"bad --at", []string{"--file", good, "--nodes", compileNodes, "--at", "noon"}, 2, "--at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, append([]string{"policy", "compile"}, tc.args...)...)
			if got := exitCode(err); got != tc.code {
				t.Fatalf("exit status %d (%v), want %d\n%s", got, err, tc.code, out)
			}
			text := out
			if err != nil {
				text += err.Error()
			}
			if !strings.Contains(text, tc.out) {
				t.Errorf("output %q, error %v: want %q in it", out, err, tc.out)
			}
			if strings.Contains(text, "no coordinator is serving") {
				t.Errorf("an offline command got the admin socket hint: %v", err)
			}
		})
	}
}

// FuzzParseInventory: the nodes file parser never panics, and what it
// accepts has named nodes with host addresses.
func FuzzParseInventory(f *testing.F) {
	b, err := os.ReadFile(compileNodes)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"nodes": [{"name": "a", "user": "", "tags": ["tag:x"], "addresses": ["::ffff:100.64.0.1", "fe80::1%eth0"]}]}`))
	f.Add([]byte(`{"nodes": null, "groups": {"A@B": null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		nodes, names, err := parseInventory(b)
		if err != nil {
			return
		}
		for _, n := range nodes {
			if names[n.ID] == "" || len(n.Addresses) == 0 {
				t.Fatalf("accepted %+v", n)
			}
			for _, a := range n.Addresses {
				if !a.IsValid() || a.Bits() != a.Addr().BitLen() {
					t.Fatalf("accepted address %v", a)
				}
			}
		}
	})
}
