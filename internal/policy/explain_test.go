package policy

import (
	"strings"
	"testing"
	"time"
)

const explainPolicy = `{
	"groups": {"group:eng": ["ann@example.com"], "group:ops": []},
	"hosts": {"metrics": "100.64.9.0/24"},
	"tagOwners": {"tag:db": [], "tag:web": []},
	"postures": {"posture:mac": ["node:os == 'macos'"], "posture:win": ["node:os == 'windows'"]},
	"acls": [
		{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "srcPosture": ["posture:mac", "posture:win"]},
		{"action": "accept", "src": ["group:ops"], "dst": ["tag:db:22"], "mfa": "12h"},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:443"],
			"when": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "hours": "08:00-19:00", "tz": "Asia/Tokyo"}},
		{"action": "accept", "src": ["metrics"], "dst": ["*:9100"]},
		{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]},
	],
}`

func TestExplain(t *testing.T) {
	p := mustParse(t, explainPolicy)
	wed10 := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) // Wed 10:00 in Tokyo
	age := func(d time.Duration) *time.Duration { return &d }
	ops := userNode(4, "carol@example.com")
	ops.Groups = []string{"ops"}
	ops.MFAAt = wed10.Add(-20 * time.Hour)
	tests := []struct {
		name    string
		q       Query
		allowed int      // rule index allowing it, or -1
		reasons []string // substrings of the best candidate's reasons
	}{
		{"posture any-of", Query{Src: "ann@example.com", Dst: "tag:db", Port: 5432, SrcPostureAttrs: map[string]string{"node:os": "windows"}}, 0, nil},
		{"posture failed", Query{Src: "ann@example.com", Dst: "tag:db", Port: 5432, SrcPostureAttrs: map[string]string{"node:os": "linux"}}, -1,
			[]string{`posture: posture:mac failed because node:os is "linux" (needs == "macos"); posture:win failed because node:os is "linux" (needs == "windows")`}},
		{"wrong port", Query{Src: "ann@example.com", Dst: "tag:db", Port: 22, SrcPostureAttrs: map[string]string{"node:os": "macos"}}, -1,
			[]string{"port: 22 is not in 5432"}},
		{"src did not match", Query{Src: "bob@example.com", Dst: "tag:db", Port: 5432, SrcPostureAttrs: map[string]string{"node:os": "macos"}}, -1,
			[]string{"src: bob@example.com is not among [group:eng]"}},
		{"mfa too old, from a node", Query{SrcNode: &ops, Dst: "tag:db", Port: 22, At: wed10}, -1,
			[]string{"mfa: MFA 20h old > 12h"}},
		{"mfa fresh", Query{Src: "carol@example.com", Dst: "tag:db", Port: 22, MFAAge: age(time.Hour)}, -1,
			[]string{"src: carol@example.com is not among [group:ops]"}},
		{"mfa fresh, IdP group from a node", Query{SrcNode: &ops, Dst: "tag:db", Port: 22, At: wed10.Add(-9 * time.Hour)}, 1, nil},
		{"inside the window", Query{Src: "bob@example.com", Dst: "tag:web", Port: 443, At: wed10}, 2, nil},
		{"outside the window", Query{Src: "bob@example.com", Dst: "tag:web", Port: 443, At: wed10.Add(10 * time.Hour)}, -1,
			[]string{"when: Wed 2026-11-25 20:00 JST is outside the time window (Mon,Tue,Wed,Thu,Fri 08:00-19:00 Asia/Tokyo)"}},
		{"no time given", Query{Src: "bob@example.com", Dst: "tag:web", Port: 443}, -1,
			[]string{"when: no time given"}},
		{"host source", Query{Src: "100.64.9.7", Dst: "tag:web", Port: 9100}, 3, nil},
		{"proto", Query{Src: "100.64.9.7", Dst: "tag:web", Port: 9100, Proto: "sctp"}, -1,
			[]string{"proto: sctp is not tcp, udp, icmp"}},
		{"self", Query{Src: "bob@example.com", Dst: "bob@example.com", Port: 22}, 4, nil},
		{"not self", Query{Src: "bob@example.com", Dst: "ann@example.com", Port: 22}, -1,
			[]string{"dst: ann@example.com is not among [autogroup:self]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := p.Explain(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if tc.allowed >= 0 {
				if !d.Allowed || d.Rule.Index != tc.allowed {
					t.Fatalf("got %v, want allowed by rule %d", d, tc.allowed)
				}
				if d.Rule.Line == 0 || !strings.HasPrefix(d.Rule.Text, `{"action":"accept"`) {
					t.Errorf("rule ref %+v", d.Rule)
				}
				return
			}
			if d.Allowed {
				t.Fatalf("allowed: %v", d)
			}
			if len(d.Candidates) == 0 {
				t.Fatalf("no candidates")
			}
			joined := strings.Join(d.Candidates[0].Reasons, "; ")
			for _, r := range tc.reasons {
				if !strings.Contains(joined, r) {
					t.Errorf("best candidate %v: reasons %q lack %q\n%v", d.Candidates[0].Rule, joined, r, d)
				}
			}
			if !strings.Contains(d.String(), "denied; closest rules:") {
				t.Errorf("String: %s", d)
			}
		})
	}
}

func TestExplainErrors(t *testing.T) {
	p := mustParse(t, explainPolicy)
	for _, q := range []Query{
		{Dst: "tag:db", Port: 1},
		{Src: "ann@example.com", Port: 1},
		{Src: "group:eng", Dst: "tag:db", Port: 1},
		{Src: "nobody", Dst: "tag:db", Port: 1},
		{Src: "ann@example.com", Dst: "tag:db", Port: 1, Proto: "nope"},
		{Src: "ann@example.com", Dst: "group:eng", Port: 1},
	} {
		if d, err := p.Explain(q); err == nil {
			t.Errorf("Explain(%+v) = %v, want an error", q, d)
		}
	}
}

func TestTestsSection(t *testing.T) {
	base := `"groups": {"group:eng": ["ann@example.com", "bob@example.com"], "group:ops": []},
		"tagOwners": {"tag:db": []},
		"postures": {"posture:mac": ["node:os == 'macos'"]},
		"acls": [
			{"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"], "srcPosture": ["posture:mac"]},
			{"action": "accept", "src": ["group:ops"], "dst": ["tag:db:22"], "mfa": "1h", "when": {"hours": "08:00-18:00", "tz": "Europe/Paris"}},
			{"action": "accept", "src": ["ann@example.com"], "dst": ["tag:db:80"]},
		],`
	tests := []struct {
		test string
		ok   bool
	}{
		{`{"src": "ann@example.com", "srcPostureAttrs": {"node:os": "macos"}, "accept": ["tag:db:5432"]}`, true},
		{`{"src": "ann@example.com", "accept": ["tag:db:5432"]}`, false},
		{`{"src": "ann@example.com", "deny": ["tag:db:5432"]}`, true},
		{`{"src": "group:eng", "srcPostureAttrs": {"node:os": "macos"}, "accept": ["tag:db:5432"]}`, true},
		// Every member, including one only the identity provider knows.
		{`{"src": "group:eng", "accept": ["tag:db:80"]}`, false},
		{`{"src": "group:eng", "deny": ["tag:db:80"]}`, false},
		{`{"src": "group:ops", "at": "2026-11-25T10:00:00+01:00", "mfaAge": "30m", "accept": ["tag:db:22"]}`, true},
		{`{"src": "group:ops", "at": "2026-11-25T10:00:00+01:00", "mfaAge": "2h", "accept": ["tag:db:22"]}`, false},
		{`{"src": "group:ops", "at": "2026-11-25T19:00:00+01:00", "mfaAge": "30m", "deny": ["tag:db:22"]}`, true},
		{`{"src": "group:ops", "mfaAge": "30m", "deny": ["tag:db:22"]}`, true},
		{`{"src": "tag:db", "deny": ["tag:db:22", "tag:db:5432", "ann@example.com:1"]}`, true},
		{`{"src": "100.64.0.1", "proto": "udp", "deny": ["tag:db:80"]}`, true},
	}
	for _, tc := range tests {
		_, err := Parse([]byte("{" + base + `"tests": [` + tc.test + "]}"))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.test, err, tc.ok)
		}
	}
}

// TestPolicyConcurrentUse runs Explain and MayTag from several goroutines
// (a Policy is immutable; run with -race).
func TestPolicyConcurrentUse(t *testing.T) {
	p := mustParse(t, explainPolicy)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 50 {
				if _, err := p.Explain(Query{Src: "ann@example.com", Dst: "tag:db", Port: 5432}); err != nil {
					t.Error(err)
				}
				if _, err := p.Explain(Query{Src: "nobody", Dst: "tag:db", Port: 5432}); err == nil {
					t.Error("no error")
				}
				p.MayTag(Owner{Login: "ann@example.com"}, "tag:db")
			}
		}()
	}
	for range 4 {
		<-done
	}
}
