package export

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    SinkConfig
		wantErr string
	}{
		{in: "file:///var/log/warren/events.jsonl?max-size=100MiB&keep=3",
			want: SinkConfig{Name: "file:///var/log/warren/events.jsonl", Kind: KindFile, Path: "/var/log/warren/events.jsonl", MaxSize: 100 << 20, Keep: 3}},
		{in: "file:///x.jsonl", want: SinkConfig{Name: "file:///x.jsonl", Kind: KindFile, Path: "/x.jsonl", MaxSize: DefaultMaxSize, Keep: DefaultKeep}},
		{in: "syslog+tcp://127.0.0.1:514", want: SinkConfig{Name: "syslog+tcp://127.0.0.1:514", Kind: KindSyslog, Network: "tcp", Addr: "127.0.0.1:514", Facility: DefaultFacility}},
		{in: "syslog+udp://[::1]:514?facility=16&name=local", want: SinkConfig{Name: "local", Kind: KindSyslog, Network: "udp", Addr: "[::1]:514", Facility: 16}},
		{in: "syslog+tls://siem.example.com:6514?ca-file=/etc/ca.pem",
			want: SinkConfig{Name: "syslog+tls://siem.example.com:6514", Kind: KindSyslog, Network: "tls", Addr: "siem.example.com:6514", Facility: DefaultFacility, CAFile: "/etc/ca.pem", ServerName: "siem.example.com"}},
		{in: "https://hec.example.com:8088/services/collector?format=splunk&token-file=/etc/hec&secret-env=HOOK&channel=abc&batch=100",
			want: SinkConfig{Name: "https://hec.example.com:8088/services/collector", Kind: KindWebhook, URL: "https://hec.example.com:8088/services/collector?channel=abc",
				Format: FormatSplunk, TokenFile: "/etc/hec", SecretEnv: "HOOK", Index: DefaultIndex, Timeout: DefaultTimeout, Batch: 100}},
		{in: "http://127.0.0.1:9200/_bulk?format=elastic&index=audit&timeout=3s",
			want: SinkConfig{Name: "http://127.0.0.1:9200/_bulk", Kind: KindWebhook, URL: "http://127.0.0.1:9200/_bulk", Format: FormatElastic, Index: "audit", Timeout: 3 * time.Second}},
		{in: "https://hooks.slack.example/services/T0/B0/x?format=slack&actions=alert.,user.disable&name=alerts",
			want: SinkConfig{Name: "alerts", Kind: KindWebhook, URL: "https://hooks.slack.example/services/T0/B0/x", Format: FormatSlack,
				Index: DefaultIndex, Timeout: DefaultTimeout, Actions: []string{"alert.", "user.disable"}}},
		{in: "file:///x?actions=,", wantErr: "actions"},
		{in: "/var/log/x", wantErr: "no scheme"},
		{in: "ftp://x/y", wantErr: "unknown scheme"},
		{in: "file://host/x", wantErr: "no host"},
		{in: "file:///x?keep=-1", wantErr: "keep"},
		{in: "file:///x?max-size=12parsecs", wantErr: "max-size"},
		{in: "file:///x?colour=red", wantErr: "unknown option"},
		{in: "syslog+tcp://siem.example.com", wantErr: "host:port"},
		{in: "syslog+tcp://siem.example.com:0", wantErr: "port"},
		{in: "syslog+udp://h:514?facility=24", wantErr: "facility"},
		{in: "https://h/hook?format=xml", wantErr: "format"},
		{in: "https://h/hook?secret-file=/a&secret-env=B", wantErr: "not both"},
		{in: "https://ann:hunter2@h/hook", wantErr: "no user or password"},
		{in: "https://h/hook?batch=0", wantErr: "batch"},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseURL(%q) error = %v, want one saying %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("ParseURL(%q) error shows the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURL(%q) =\n %+v\nwant\n %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseFile(t *testing.T) {
	src := `{
	// Sinks of the coordinator's events.
	"sinks": [
		{"url": "file:///var/log/warren/events.jsonl?keep=5"},
		{"name": "splunk", "url": "https://hec.example.com/services/collector?format=splunk&token-file=/etc/hec"},
	],
}`
	got, err := ParseFile([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Keep != 5 || got[1].Name != "splunk" || got[1].Format != FormatSplunk {
		t.Fatalf("parsed %+v", got)
	}
	for _, bad := range []struct{ src, want string }{
		{`{"sinks": [{"url": ""}]}`, "no url"},
		{`{"sinks": [{"url": "gopher://x"}]}`, "sinks[0]"},
		{`{"sinks": [{"uri": "file:///x"}]}`, "unknown field"},
		{`{"sinks": []} {}`, "log sinks file"},
		{`{"sinks": [`, "log sinks file"},
	} {
		if _, err := ParseFile([]byte(bad.src)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseFile(%s) error = %v, want one saying %q", bad.src, err, bad.want)
		}
	}
}

// FuzzParseURL: any --log-sink value is parsed or refused with an error,
// never a panic, and what parses is a sink the exporter can build.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"file:///var/log/e.jsonl?max-size=1MiB&keep=2", "syslog+tcp://h:514", "syslog+tls://h:6514?ca-file=/c",
		"syslog+udp://[::1]:514?facility=1", "https://h/x?format=elastic&index=i&batch=5", "http://u:p@h/", "file:///%zz", "syslog://h:1?name=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseURL(s)
		if err != nil {
			return
		}
		if c.Name == "" {
			t.Fatalf("ParseURL(%q): no name", s)
		}
		switch c.Kind {
		case KindFile:
			if c.Path == "" || c.MaxSize < 4096 || c.Keep < 0 {
				t.Fatalf("ParseURL(%q) = %+v", s, c)
			}
		case KindSyslog:
			if c.Addr == "" || c.Facility < 0 || c.Facility > 23 {
				t.Fatalf("ParseURL(%q) = %+v", s, c)
			}
		case KindWebhook:
			if c.URL == "" || c.Format == "" || c.Timeout <= 0 {
				t.Fatalf("ParseURL(%q) = %+v", s, c)
			}
		default:
			t.Fatalf("ParseURL(%q): kind %q", s, c.Kind)
		}
	})
}

// FuzzParseFile: any sinks file is parsed or refused, never a panic.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"sinks": [{"url": "file:///x"}, {"name": "n", "url": "syslog+udp://h:514"}]}`))
	f.Add([]byte(`{/* c */ "sinks": [],}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		sinks, err := ParseFile(b)
		if err != nil {
			return
		}
		for _, s := range sinks {
			if s.Name == "" || s.Kind == "" {
				t.Fatalf("ParseFile(%q): %+v", b, s)
			}
		}
	})
}

// TestKeepOKOnly: a sink with OKOnly skips refused and failed events;
// with Actions too, both filters apply.
func TestKeepOKOnly(t *testing.T) {
	ev := func(action, outcome string) Event {
		return Event{Event: EventInfo{Action: action}, Warren: Warren{Outcome: outcome}}
	}
	in := []Event{ev("access.request", "ok"), ev("access.request", "denied"), ev("access.approve", "ok"), ev("access.break-glass", "error")}
	for _, tc := range []struct {
		name string
		c    SinkConfig
		want int
	}{
		{"no filter", SinkConfig{}, 4},
		{"ok only", SinkConfig{OKOnly: true}, 2},
		{"actions and ok only", SinkConfig{OKOnly: true, Actions: []string{"access.request", "access.break-glass"}}, 1},
		{"actions only", SinkConfig{Actions: []string{"access.request"}}, 2},
	} {
		if got := tc.c.keep(in); len(got) != tc.want {
			t.Errorf("%s: kept %d, want %d", tc.name, len(got), tc.want)
		}
	}
}
