package policy

import (
	"slices"
	"testing"
)

func TestUserGroups(t *testing.T) {
	p := mustParse(t, `{
		"groups": {"group:eng": ["Ann@example.com"], "group:ops": []},
		"acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:22"]}],
	}`)
	for _, tc := range []struct {
		login            string
		own              []string
		listed, declared []string
		allowedWithOwn   bool
	}{
		{"ann@example.com", nil, []string{"group:eng"}, nil, false},
		{"bob@example.com", []string{"ops", "sales"}, nil, []string{"group:ops"}, true},
		{"bob@example.com", []string{"group:ops", "ops"}, nil, []string{"group:ops"}, true},
		{"ann@example.com", []string{"sales"}, []string{"group:eng"}, nil, false},
	} {
		listed, declared := p.UserGroups(tc.login, tc.own)
		if !slices.Equal(listed, tc.listed) || !slices.Equal(declared, tc.declared) {
			t.Errorf("UserGroups(%s, %v) = %v, %v; want %v, %v", tc.login, tc.own, listed, declared, tc.listed, tc.declared)
		}
		// Explain of a user counts the groups the caller passes.
		d, err := p.Explain(Query{Src: tc.login, SrcGroups: tc.own, Dst: "100.64.0.9", Port: 22})
		if err != nil || d.Allowed != tc.allowedWithOwn {
			t.Errorf("explain %s with groups %v: %v, %v", tc.login, tc.own, d, err)
		}
	}
}
