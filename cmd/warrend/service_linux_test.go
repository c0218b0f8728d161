package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstallServicePrint checks what install-service would do on Linux:
// the unit's command line carries the daemon flags given (paths made
// absolute, the warren group by default), and nothing is done.
func TestInstallServicePrint(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ = filepath.EvalSymlinks(exe)
	cwd, _ := os.Getwd()
	units := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"defaults", nil, []string{
			"run groupadd -f --system warren\n",
			"write " + units + "/warrend.service (0644)\n",
			"ExecStart=" + exe + " --state-dir /var/lib/warren --socket-group warren\n",
			"StateDirectory=warren\n", "RuntimeDirectory=warren\n",
			"run systemctl daemon-reload\nrun systemctl enable --now warrend.service\n",
		}},
		{"flags carried", []string{"--tun", "warren0", "--expose", "80", "--expose", "443=127.0.0.1:8443", "--state-dir", "st", "--socket-group", "staff", "--log-format", "json"}, []string{
			"run groupadd -f --system staff\n",
			"run groupadd -f --system staff\ncreate " + cwd + "/st (0700)\n",
			"ExecStart=" + exe + " --state-dir " + cwd + "/st --socket-group staff --expose 80 --expose 443=127.0.0.1:8443 --log-format json --tun warren0\n",
			"ReadWritePaths=" + cwd + "/st\n",
		}},
		{"no group", []string{"--socket-group="}, []string{
			"ExecStart=" + exe + " --state-dir /var/lib/warren --socket-group \"\"\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"install-service", "--print", "--service-dir", units}, tt.args...)
			if err := run(context.Background(), args, &out, &errb, nil); err != nil {
				t.Fatalf("warrend %q: %v\n%s", args, err, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if tt.name == "no group" && strings.Contains(out.String(), "groupadd") {
				t.Errorf("no group, but one is created:\n%s", out.String())
			}
		})
	}
	if entries, _ := os.ReadDir(units); len(entries) != 0 {
		t.Errorf("--print wrote %d files", len(entries))
	}
}

func TestInstallServiceRefuses(t *testing.T) {
	for _, args := range [][]string{
		{"install-service", "--port", "70000"},
		{"install-service", "--expose", "eighty"},
		{"install-service", "--log-format", "xml"},
		{"install-service", "extra"},
		{"uninstall-service", "--tun", "x"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), append(args, "--print"), &out, &out, nil); err == nil {
			t.Errorf("warrend %q: no error", args)
		}
	}
}

func TestUninstallServicePrint(t *testing.T) {
	t.Setenv("WARREN_SERVICE_DIR", "/tmp/h16c-never")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"uninstall-service", "--print"}, &out, &out, nil); err != nil {
		t.Fatal(err)
	}
	want := "run systemctl disable --now warrend.service (may fail)\nremove /tmp/h16c-never/warrend.service\nrun systemctl daemon-reload\n"
	if out.String() != want {
		t.Errorf("uninstall-service --print:\n%s\nwant:\n%s", out.String(), want)
	}
}
