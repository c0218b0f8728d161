package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/wire"
)

// TestSSHPolicyFor compiles ssh sections for destination nodes: table of
// policy → the rules each destination receives.
func TestSSHPolicyFor(t *testing.T) {
	ann, ann2, bob := userNode(1, "ann@example.com"), userNode(2, "ann@example.com"), userNode(3, "bob@example.com")
	prod, rec, ci := tagNode(4, "tag:prod"), tagNode(5, "tag:rec"), tagNode(6, "tag:ci")
	all := []Node{ann, ann2, bob, prod, rec, ci}
	defs := `"groups": {"group:eng": ["ann@example.com"]}, "tagOwners": {"tag:prod": [], "tag:rec": [], "tag:ci": []}, "acls": []`
	tests := []struct {
		name string
		ssh  string
		more string // other sections
		dst  Node
		want string // rendered policy, "" for nil
	}{
		{"no rules", ``, "", prod, ""},
		{"not a destination",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`, "", bob, ""},
		{"accept with defaults",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root", "autogroup:nonroot"]}`, "", prod,
			"ssh[0] accept src=[1 2] users=[root autogroup:nonroot]"},
		{"check default period, and always",
			`{"action": "check", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["ubuntu"]},
			 {"action": "check", "src": ["tag:ci"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": "always"}`, "", prod,
			"ssh[0] check/12h0m0s src=[1 2 3] users=[ubuntu]; ssh[1] check/-1ns src=[6] users=[root]"},
		{"self: each user's own devices",
			`{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["localpart:*@example.com"], "acceptEnv": ["GIT_*"], "portForwarding": true}`, "", ann,
			"ssh[0] accept src=[2] users=[localpart:*@example.com] env=[GIT_*] fwd"},
		{"recorders, fail closed by default",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": ["tag:rec"]}`, "", prod,
			"ssh[0] accept src=[1 2] users=[root] record=[5]"},
		{"recorders, fail open",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"], "recorder": ["tag:rec"], "enforceRecorder": false}`, "", prod,
			"ssh[0] accept src=[1 2] users=[root] record=[5] failOpen"},
		{"the attribute: the coordinator records",
			`{"action": "accept", "src": ["group:eng"], "dst": ["tag:prod"], "users": ["root"]}`,
			`, "nodeAttrs": [{"target": ["tag:prod"], "attr": ["warren:ssh-record"]}]`, prod,
			"ssh[0] accept src=[1 2] users=[root] record=[]"},
		{"rules in order, sources only those admitted",
			`{"action": "accept", "src": ["bob@example.com"], "dst": ["tag:ci"], "users": ["root"]},
			 {"action": "accept", "src": ["tag:prod"], "dst": ["autogroup:tagged"], "users": ["root"]}`, "", ci,
			"ssh[0] accept src=[3] users=[root]; ssh[1] accept src=[4] users=[root]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := mustParse(t, `{`+defs+`, "ssh": [`+tc.ssh+`]`+tc.more+`}`)
			var peers []*Node
			for i := range all {
				if all[i].ID != tc.dst.ID {
					peers = append(peers, &all[i])
				}
			}
			got := renderSSH(p.SSHPolicyFor(&tc.dst, peers))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if p.SSHTargets(&tc.dst) != (tc.want != "") {
				t.Errorf("SSHTargets = %v", !(tc.want != ""))
			}
		})
	}
}

func renderSSH(pol *wire.SSHPolicy) string {
	if pol == nil {
		return ""
	}
	var out []string
	for _, r := range pol.Rules {
		s := r.Rule + " " + r.Action
		if r.Action == wire.SSHCheck {
			s += "/" + r.CheckPeriod.String()
		}
		s += fmt.Sprintf(" src=%v users=%v", r.Sources, r.Users)
		if len(r.AcceptEnv) > 0 {
			s += fmt.Sprintf(" env=%v", r.AcceptEnv)
		}
		if r.PortForwarding {
			s += " fwd"
		}
		if r.Record != nil {
			s += fmt.Sprintf(" record=%v", r.Record.Recorders)
			if r.Record.FailOpen {
				s += " failOpen"
			}
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

// TestSSHDecide: check wins over accept, whatever their order.
func TestSSHDecide(t *testing.T) {
	p := mustParse(t, `{"tagOwners": {"tag:prod": []}, "acls": [], "ssh": [
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["autogroup:nonroot", "root"]},
		{"action": "check", "src": ["autogroup:member"], "dst": ["tag:prod"], "users": ["root"], "checkPeriod": "1h"}]}`)
	ann, prod := userNode(1, "ann@example.com"), tagNode(2, "tag:prod")
	for _, tc := range []struct {
		user string
		want SSHDecision
		ok   bool
	}{
		{"ubuntu", SSHDecision{Rule: "ssh[0]"}, true},
		{"root", SSHDecision{Rule: "ssh[1]", Check: true, CheckPeriod: time.Hour}, true},
	} {
		d, ok := p.SSHDecide(&ann, &prod, tc.user)
		if d != tc.want || ok != tc.ok {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.user, d, ok, tc.want, tc.ok)
		}
	}
	if _, ok := p.SSHDecide(&prod, &ann, "root"); ok {
		t.Error("a tagged node may log in to a user's device")
	}
}

// FuzzSSHCompile builds random ssh sections and checks, for every pair of
// nodes and a few local users, that the compiled per-node policy (the
// first check rule admitting the source and user, else the first accept
// rule), SSHDecide and the sshTests evaluator (sshAllows) agree, and that
// SSHPeerRole agrees with the compiled Sources and Recorders.
func FuzzSSHCompile(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 13, 17, 19, 23, 29, 31, 37})
	f.Add([]byte("ssh rules compiled"))
	srcs := []string{"ann@example.com", "group:eng", "tag:db", "tag:ci", "autogroup:member", "autogroup:tagged", "autogroup:admin", "user:*@example.com"}
	dsts := []string{"tag:db", "tag:web", "autogroup:self", "autogroup:member", "autogroup:tagged"}
	users := []string{"root", "ann", "ubuntu", "autogroup:nonroot", "localpart:*@example.com", "localpart:*@EXAMPLE.com"}
	logins := []string{"root", "ann", "bob", "ubuntu"}
	f.Fuzz(func(t *testing.T, b []byte) {
		next := func() int {
			if len(b) == 0 {
				return 0
			}
			v := int(b[0])
			b = b[1:]
			return v
		}
		var rules []string
		for len(b) > 0 && len(rules) < 6 {
			action := `"accept"`
			extra := ""
			switch next() % 4 {
			case 1:
				action = `"check"`
			case 2:
				action, extra = `"check"`, `, "checkPeriod": "always"`
			case 3:
				extra = `, "recorder": ["tag:web"], "enforceRecorder": false`
			}
			src := srcs[next()%len(srcs)]
			dst := dsts[next()%len(dsts)]
			user := users[next()%len(users)]
			rules = append(rules, fmt.Sprintf(`{"action": %s, "src": [%q], "dst": [%q], "users": [%q]%s}`, action, src, dst, user, extra))
		}
		p, err := Parse([]byte(`{"groups": {"group:eng": ["ann@example.com"]}, "tagOwners": {"tag:db": [], "tag:web": [], "tag:ci": []},
			"acls": [], "ssh": [` + strings.Join(rules, ",") + `]}`))
		if err != nil {
			return // an invalid combination (tagged source to a user's device)
		}
		nodes := fuzzNodes(time.Now())
		for di := range nodes {
			dst := &nodes[di]
			var peers []*Node
			for i := range nodes {
				if i != di {
					peers = append(peers, &nodes[i])
				}
			}
			pol := p.SSHPolicyFor(dst, peers)
			if (pol != nil) != p.SSHTargets(dst) {
				t.Fatalf("SSHTargets disagrees for node %d", dst.ID)
			}
			for _, src := range peers {
				checkSSHRoles(t, p, pol, dst, src)
				for _, login := range logins {
					ref, _ := p.sshAllows(p.nodeSubject(src), p.nodeSubject(dst), login)
					got := compiledVerdict(pol, src, login)
					if got != ref {
						t.Fatalf("node %d -> %d as %s: compiled %d, sshAllows %d\n%s", src.ID, dst.ID, login, got, ref, renderSSH(pol))
					}
					d, ok := p.SSHDecide(src, dst, login)
					if ok != (ref != sshDenied) || d.Check != (ref == sshChecked) {
						t.Fatalf("SSHDecide %+v %v, sshAllows %d", d, ok, ref)
					}
				}
			}
		}
	})
}

func checkSSHRoles(t *testing.T, p *Policy, pol *wire.SSHPolicy, dst, peer *Node) {
	t.Helper()
	n := 0
	p.SSHPeerRole(dst, peer, func(i int, rule string, source, recorder bool) {
		n++
		r := pol.Rules[i]
		if r.Rule != rule {
			t.Fatalf("SSHPeerRole rule %d is %s, compiled %s", i, rule, r.Rule)
		}
		if slices.Contains(r.Sources, peer.ID) != source {
			t.Fatalf("SSHPeerRole source %v for %d in %s", source, peer.ID, r.Rule)
		}
		if r.Record != nil && slices.Contains(r.Record.Recorders, peer.ID) != recorder {
			t.Fatalf("SSHPeerRole recorder %v for %d in %s", recorder, peer.ID, r.Rule)
		}
	})
	if pol != nil && n != len(pol.Rules) {
		t.Fatalf("SSHPeerRole visited %d of %d rules", n, len(pol.Rules))
	}
}

// compiledVerdict evaluates a compiled policy the way the node does.
func compiledVerdict(pol *wire.SSHPolicy, src *Node, login string) sshVerdict {
	if pol == nil {
		return sshDenied
	}
	v := sshDenied
	for _, r := range pol.Rules {
		if !slices.Contains(r.Sources, src.ID) || !userMatches(r.Users, src, login) {
			continue
		}
		if r.Action == wire.SSHCheck {
			return sshChecked
		}
		v = sshAccepted
	}
	return v
}

func userMatches(users []string, src *Node, login string) bool {
	for _, u := range users {
		switch {
		case u == login && !strings.Contains(u, ":"):
			return true
		case u == "autogroup:nonroot" && login != "root":
			return true
		case strings.HasPrefix(u, "localpart:*@") && len(src.Tags) == 0:
			local, dom, ok := strings.Cut(src.User, "@")
			if ok && strings.EqualFold(dom, strings.TrimPrefix(u, "localpart:*@")) && strings.EqualFold(local, login) && local == strings.ToLower(local) {
				return true
			}
		}
	}
	return false
}

func TestNodeGroupsAndPostures(t *testing.T) {
	p := mustParse(t, `{"groups": {"group:eng": ["ann@example.com"], "group:ops": []}, "tagOwners": {"tag:db": []},
		"postures": {"posture:mac": ["node:os == 'macos'"], "posture:any": ["node:os != 'windows'"]}, "acls": []}`)
	ann := userNode(1, "Ann@example.com")
	ann.Groups = []string{"ops", "unknown"}
	ann.Attrs = map[string]string{"node:os": "macos"}
	if g := p.NodeGroups(&ann); !slices.Equal(g, []string{"group:eng", "group:ops"}) {
		t.Errorf("groups %v", g)
	}
	if ps := p.NodePostures(&ann); !slices.Equal(ps, []string{"posture:any", "posture:mac"}) {
		t.Errorf("postures %v", ps)
	}
	db := tagNode(2, "tag:db")
	if g, ps := p.NodeGroups(&db), p.NodePostures(&db); g != nil || ps != nil {
		t.Errorf("tagged: %v %v", g, ps)
	}
}
