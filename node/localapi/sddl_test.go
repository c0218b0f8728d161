package localapi

import (
	"strings"
	"testing"
)

func TestPipeSDDL(t *testing.T) {
	const (
		user  = "S-1-5-21-1004336348-1177238915-682003330-1001"
		group = "S-1-5-21-1004336348-1177238915-682003330-2001"
		base  = "D:P(A;;GA;;;SY)(A;;GA;;;BA)"
	)
	tests := []struct {
		name    string
		owner   string
		access  Access
		want    string
		wantErr string
	}{
		{"service as SYSTEM, no one else", "S-1-5-18", Access{}, base, ""},
		{"a user's daemon", user, Access{}, base + "(A;;GA;;;" + user + ")", ""},
		{"group", "S-1-5-18", Access{Group: group}, base + "(A;;GRGW;;;" + group + ")", ""},
		{"installing user", "S-1-5-18", Access{Users: []string{user}}, base + "(A;;GRGW;;;" + user + ")", ""},
		{"owner also listed as user", user, Access{Users: []string{user}}, base + "(A;;GA;;;" + user + ")", ""},
		{"administrators as group add nothing", "S-1-5-18", Access{Group: "S-1-5-32-544"}, base, ""},
		{"group and users", "S-1-5-18", Access{Group: group, Users: []string{user}},
			base + "(A;;GRGW;;;" + group + ")(A;;GRGW;;;" + user + ")", ""},
		{"ACE smuggled in a group", "S-1-5-18", Access{Group: "S-1-5-32-545)(A;;GA;;;WD"}, "", "not a SID"},
		{"name for a SID", "S-1-5-18", Access{Users: []string{"alice"}}, "", "not a SID"},
		{"unix gid", "S-1-5-18", Access{Group: "1000"}, "", "not a SID"},
		{"bad owner", "", Access{}, "", "not a SID"},
	}
	for _, tt := range tests {
		got, err := pipeSDDL(tt.owner, tt.access)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: pipeSDDL = %q, %v; want error %q", tt.name, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: pipeSDDL = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestValidSID(t *testing.T) {
	for _, s := range []string{"S-1-5-18", "S-1-5-32-544", "S-1-1-0", "S-1-5-21-1-2-3-1001"} {
		if !validSID(s) {
			t.Errorf("validSID(%q) = false", s)
		}
	}
	for _, s := range []string{"", "S-1-", "S-1-5-", "S-1--5", "S-2-5-18", "s-1-5-18", "S-1-5-x", "S-1-5-18)", "S-1-5-18 ",
		"S-1-5-1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16", "S-1-5-123456789012345678901"} {
		if validSID(s) {
			t.Errorf("validSID(%q) = true", s)
		}
	}
}

func FuzzPipeSDDL(f *testing.F) {
	f.Add("S-1-5-18", "S-1-5-21-1-2-3-1001")
	f.Add("S-1-5-21-1-2-3", "S-1-5-32-545)(A;;GA;;;WD")
	f.Fuzz(func(t *testing.T, owner, group string) {
		got, err := pipeSDDL(owner, Access{Group: group, Users: []string{group}})
		if err != nil {
			return
		}
		// Every ACE is one of ours: as many ACEs as SIDs, none open.
		if n := strings.Count(got, "(A;;"); n != strings.Count(got, ")") || n < 2 || n > 4 {
			t.Fatalf("pipeSDDL(%q, %q) = %q", owner, group, got)
		}
		if strings.Contains(got, ";WD)") || strings.Contains(got, ";AN)") {
			t.Fatalf("pipeSDDL(%q, %q) = %q grants everyone", owner, group, got)
		}
	})
}
