package peercred

import "testing"

// TestPolicyAllows checks the decision on both kinds of identity, unix
// (decimal uids and gids) and Windows (SIDs), whatever OS runs the test.
func TestPolicyAllows(t *testing.T) {
	const (
		user  = "S-1-5-21-1-2-3-1001"
		other = "S-1-5-21-1-2-3-1002"
		group = "S-1-5-21-1-2-3-2001"
		users = "S-1-5-32-545" // BUILTIN\Users
	)
	unix := Policy{Admins: UnixAdmins, Owner: "1000"}
	unixGroup := Policy{Admins: UnixAdmins, Owner: "1000", Group: "4242"}
	unixGroup0 := Policy{Admins: UnixAdmins, Owner: "1000", Group: "0"}
	win := Policy{Admins: WindowsAdmins, Owner: sidSystem}
	winGroup := Policy{Admins: WindowsAdmins, Owner: sidSystem, Group: group}
	winUser := Policy{Admins: WindowsAdmins, Owner: sidSystem, Users: []string{user}}
	tests := []struct {
		name   string
		policy Policy
		cred   Cred
		want   bool
	}{
		{"unix: root", unix, Cred{User: "0", Groups: []string{"12345"}}, true},
		{"unix: owner", unix, Cred{User: "1000", Groups: []string{"12345"}}, true},
		{"unix: other user", unix, Cred{User: "2000", Groups: []string{"2000"}}, false},
		{"unix: other user in group 0, none configured", unix, Cred{User: "2000", Groups: []string{"0"}}, false},
		{"unix: primary group", unixGroup, Cred{User: "2000", Groups: []string{"4242"}}, true},
		{"unix: supplementary group", unixGroup, Cred{User: "2000", Groups: []string{"2000", "10", "4242"}}, true},
		{"unix: other groups", unixGroup, Cred{User: "2000", Groups: []string{"2000", "10", "4243"}}, false},
		{"unix: uid equal to the group's gid", unixGroup, Cred{User: "4242", Groups: []string{"2000"}}, false},
		{"unix: group 0", unixGroup0, Cred{User: "2000", Groups: []string{"0"}}, true},
		{"unix: no user reported", unixGroup, Cred{Groups: []string{"4242"}}, false},
		{"unix: a SID is no admin", unix, Cred{User: "2000", Groups: []string{sidAdministrators}}, false},
		{"windows: SYSTEM", win, Cred{User: sidSystem}, true},
		{"windows: elevated administrator", win, Cred{User: user, Groups: []string{users, sidAdministrators}}, true},
		{"windows: plain user", win, Cred{User: user, Groups: []string{users}}, false},
		{"windows: uid 0 is no one", win, Cred{User: "0"}, false},
		{"windows: group member", winGroup, Cred{User: other, Groups: []string{users, group}}, true},
		{"windows: not a group member", winGroup, Cred{User: other, Groups: []string{users}}, false},
		{"windows: user SID equal to the group", winGroup, Cred{User: group}, false},
		{"windows: installing user", winUser, Cred{User: user, Groups: []string{users}}, true},
		{"windows: another user", winUser, Cred{User: other, Groups: []string{users}}, false},
		{"windows: the user as a group SID", winUser, Cred{User: other, Groups: []string{user}}, false},
		{"empty group matches nothing", Policy{Owner: "1000"}, Cred{User: "2000", Groups: []string{""}}, false},
	}
	for _, tt := range tests {
		if got := tt.policy.Allows(tt.cred); got != tt.want {
			t.Errorf("%s: %+v allows %v = %v, want %v", tt.name, tt.policy, tt.cred, got, tt.want)
		}
	}
}
