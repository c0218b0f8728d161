package policy

import "testing"

func TestOptions(t *testing.T) {
	p := mustParse(t, `{"acls": [], "randomizeClientPort": true, "disableIPv4": true, "OneCGNATRoute": "mac-never", "derpMap": {"Regions": {}}}`)
	want := Options{RandomizeClientPort: true, DisableIPv4: true, OneCGNATRoute: "mac-never", HasDERPMap: true}
	if got := p.Options(); got != want {
		t.Errorf("Options() = %+v, want %+v", got, want)
	}
	if got := mustParse(t, `{"acls": []}`).Options(); got != (Options{}) {
		t.Errorf("Options() of a file without options = %+v", got)
	}
}

func TestOptionsWarnings(t *testing.T) {
	runWarnCases(t, []warnCase{
		{"randomizeClientPort", `{"acls": [], "randomizeClientPort": ‸true}`,
			[]string{"randomizeClientPort: accepted, has no effect in Warren"}},
		{"randomizeClientPort false says nothing", `{"acls": [], "randomizeClientPort": false, "disableIPv4": false, "OneCGNATRoute": ""}`, nil},
		{"disableIPv4", `{"acls": [], "disableIPv4": ‸true}`, []string{"disableIPv4: accepted, has no effect in Warren"}},
		{"OneCGNATRoute", `{"acls": [], "OneCGNATRoute": ‸"mac-always"}`, []string{"OneCGNATRoute: accepted, has no effect in Warren"}},
		{"derpMap", `{"acls": [], "derpMap": ‸{"OmitDefaultRegions": true}}`, []string{"derpMap: accepted, has no effect in Warren"}},
	})
}

func TestOptionsErrors(t *testing.T) {
	runDiagCases(t, []diagCase{
		{"randomizeClientPort not a boolean", `{"randomizeClientPort": ‸"yes"}`,
			[]string{`randomizeClientPort must be a boolean, not a string (hint: write true or false)`}},
		{"disableIPv4 not a boolean", `{"disableIPv4": ‸1}`, []string{`disableIPv4 must be a boolean, not a number`}},
		{"bad OneCGNATRoute", `{"OneCGNATRoute": ‸"always"}`, []string{`invalid OneCGNATRoute "always"`}},
		{"derpMap not an object", `{"derpMap": ‸[]}`, []string{`derpMap must be an object, not an array`}},
		{"unknown top-level fields are still errors", `{‸"randomizeClientPorts": true}`,
			[]string{`unknown field "randomizeClientPorts" in the policy (hint: did you mean "randomizeClientPort"?)`}},
	})
}
