package sshserver

import (
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

func TestMatch(t *testing.T) {
	alice := wire.Node{ID: 2, Name: "alice-laptop", User: "alice@Example.com"}
	bob := wire.Node{ID: 3, Name: "bob-laptop", User: "bob@example.com"}
	tagged := wire.Node{ID: 4, Name: "ci", Tags: []string{"tag:ci"}}
	accept := wire.SSHRule{Rule: "ssh[0]", Sources: []wire.NodeID{2, 4}, Users: []string{"autogroup:nonroot"}, Action: wire.SSHAccept}
	named := wire.SSHRule{Rule: "ssh[1]", Sources: []wire.NodeID{3}, Users: []string{"root", "deploy"}, Action: wire.SSHAccept}
	check := wire.SSHRule{Rule: "ssh[2]", Sources: []wire.NodeID{2}, Users: []string{"admin"}, Action: wire.SSHCheck, CheckPeriod: wire.SSHCheckAlways}
	local := wire.SSHRule{Rule: "ssh[3]", Sources: []wire.NodeID{2, 3, 4}, Users: []string{"localpart:*@example.COM"}, Action: wire.SSHAccept}
	checkAll := wire.SSHRule{Rule: "ssh[4]", Sources: []wire.NodeID{3}, Users: []string{"autogroup:nonroot"}, Action: wire.SSHCheck}
	odd := wire.SSHRule{Rule: "ssh[5]", Sources: []wire.NodeID{2}, Users: []string{"eve"}, Action: "drop"}
	pol := &wire.SSHPolicy{Rules: []wire.SSHRule{accept, named, check, local, checkAll, odd}}
	tests := []struct {
		name  string
		pol   *wire.SSHPolicy
		peer  wire.Node
		login string
		want  string // rule name, "" for none
	}{
		{"nonroot", pol, alice, "alice", "ssh[0]"},
		{"root is not nonroot", pol, alice, "root", ""},
		{"check wins over an earlier accept", pol, alice, "admin", "ssh[2]"},
		{"named root", pol, bob, "root", "ssh[1]"},
		{"check for bob's other users", pol, bob, "deploy", "ssh[4]"},
		{"check wins over localpart", pol, bob, "bob", "ssh[4]"},
		{"not a source", &wire.SSHPolicy{Rules: []wire.SSHRule{named}}, alice, "deploy", ""},
		{"localpart", &wire.SSHPolicy{Rules: []wire.SSHRule{local}}, alice, "alice", "ssh[3]"},
		{"localpart of someone else", &wire.SSHPolicy{Rules: []wire.SSHRule{local}}, alice, "bob", ""},
		{"localpart, tagged", &wire.SSHPolicy{Rules: []wire.SSHRule{local}}, tagged, "ci", ""},
		{"localpart, other domain", &wire.SSHPolicy{Rules: []wire.SSHRule{{Rule: "x", Sources: []wire.NodeID{2}, Users: []string{"localpart:*@other.com"}, Action: wire.SSHAccept}}}, alice, "alice", ""},
		{"tagged nonroot", pol, tagged, "build", "ssh[0]"},
		{"unknown action", &wire.SSHPolicy{Rules: []wire.SSHRule{odd}}, alice, "eve", ""},
		{"no policy", nil, alice, "alice", ""},
		{"empty login", pol, alice, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if r := Match(tt.pol, tt.peer, tt.login); r != nil {
				got = r.Rule
			}
			if got != tt.want {
				t.Errorf("Match(%s as %q) = %q, want %q", tt.peer.Name, tt.login, got, tt.want)
			}
		})
	}
}

func TestEnvAllowed(t *testing.T) {
	pats := []string{"LANG", "LC_*", "GIT_?", "[A]"}
	for name, want := range map[string]bool{
		"LANG": true, "LC_ALL": true, "GIT_X": true, "GIT_XY": false, "PATH": false,
		"LD_PRELOAD": false, "A": false, "[A]": false, "": false, "1X": false, "LC_=": false,
	} {
		if got := envAllowed(pats, name); got != want {
			t.Errorf("envAllowed(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzMatch checks Match against what the rules say: whatever it returns
// lists the peer as a source, matches the login by its users, is the
// first such check rule or (with no check rule matching) the first such
// accept rule; and root is admitted only by name.
func FuzzMatch(f *testing.F) {
	f.Add(uint8(2), "alice@example.com", false, "alice", "autogroup:nonroot", "localpart:*@EXAMPLE.com", uint8(6), uint8(0x55))
	f.Add(uint8(1), "", true, "root", "root", "autogroup:nonroot", uint8(3), uint8(0x0f))
	f.Fuzz(func(t *testing.T, peerID uint8, login string, tagged bool, localUser, u1, u2 string, nrules, bits uint8) {
		peer := wire.Node{ID: wire.NodeID(peerID % 4), User: login}
		if tagged {
			peer.Tags = []string{"tag:x"}
		}
		users := []string{u1, u2, "autogroup:nonroot", "localpart:*@example.com", "root", localUser}
		var pol wire.SSHPolicy
		for i := range int(nrules % 8) {
			r := wire.SSHRule{Rule: string(rune('a' + i)), Action: wire.SSHAccept}
			if bits>>(i%8)&1 == 1 {
				r.Action = wire.SSHCheck
			}
			r.Sources = []wire.NodeID{wire.NodeID((int(peerID) + i) % 4)}
			r.Users = users[(i+int(bits))%len(users) : (i+int(bits))%len(users)+1]
			pol.Rules = append(pol.Rules, r)
		}
		got := Match(&pol, peer, localUser)
		// The reference: the plain reading of the rules.
		var want *wire.SSHRule
		for _, action := range []string{wire.SSHCheck, wire.SSHAccept} {
			for i := range pol.Rules {
				r := &pol.Rules[i]
				if want == nil && r.Action == action && slices.Contains(r.Sources, peer.ID) && localUser != "" && refUsers(r.Users, peer, localUser) {
					want = r
				}
			}
		}
		if got != want {
			t.Fatalf("Match = %+v, want %+v", got, want)
		}
		if got != nil && localUser == "root" && !slices.Contains(got.Users, "root") {
			t.Fatalf("root admitted by %+v", got)
		}
	})
}

func refUsers(users []string, peer wire.Node, localUser string) bool {
	for _, u := range users {
		if u == localUser && !strings.Contains(u, ":") {
			return true
		}
		if u == "autogroup:nonroot" && localUser != "root" {
			return true
		}
		if d, ok := strings.CutPrefix(u, "localpart:*@"); ok && d != "" && len(peer.Tags) == 0 &&
			strings.HasPrefix(peer.User, localUser+"@") && strings.EqualFold(peer.User[len(localUser)+1:], d) {
			return true
		}
	}
	return false
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: never cut in half
		{"ééé", 5, "éé"},
	} {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
