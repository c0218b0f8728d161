package service

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/warrenmesh/warren/internal/cli"
)

func TestCommandLine(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	base := []Arg{{"state-dir", "/var/lib/warren"}, {"socket-group", "warren"}}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"defaults", nil, []string{"--state-dir", "/var/lib/warren", "--socket-group", "warren"}},
		{"user values replace the defaults in place", []string{"--socket-group", "staff", "--state-dir", "/srv/warren"},
			[]string{"--state-dir", "/srv/warren", "--socket-group", "staff"}},
		{"an empty group turns it off", []string{"--socket-group="},
			[]string{"--state-dir", "/var/lib/warren", "--socket-group", ""}},
		{"paths become absolute", []string{"--state-dir", "state", "--socket", "run/w.sock"},
			[]string{"--state-dir", filepath.Join(cwd, "state"), "--socket-group", "warren", "--socket", filepath.Join(cwd, "run/w.sock")}},
		{"other flags by name, repeatable ones once per value, bools bare", []string{"--tun", "warren0", "--relay-only", "--expose", "80", "--expose", "443=127.0.0.1:8443"},
			[]string{"--state-dir", "/var/lib/warren", "--socket-group", "warren", "--expose", "80", "--expose", "443=127.0.0.1:8443", "--relay-only", "--tun", "warren0"}},
		{"a false bool stays explicit", []string{"--relay-only=false"},
			[]string{"--state-dir", "/var/lib/warren", "--socket-group", "warren", "--relay-only=false"}},
		{"the installer's own flags stay behind", []string{"--print", "--service-dir", "/tmp/u"},
			[]string{"--state-dir", "/var/lib/warren", "--socket-group", "warren"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("warrend", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.String("state-dir", "/var/lib/warren", "")
			fs.String("socket", "/run/warren/warrend.sock", "")
			fs.String("socket-group", "", "")
			fs.String("tun", "", "")
			fs.Bool("relay-only", false, "")
			var expose cli.StringList
			fs.Var(&expose, "expose", "")
			fs.Bool("print", false, "")
			fs.String("service-dir", "", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := CommandLine(fs, base, []string{"print", "service-dir"}, []string{"state-dir", "socket"})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("CommandLine(%q)\n = %q\nwant %q", tt.args, got, tt.want)
			}
		})
	}
}
