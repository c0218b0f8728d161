package service

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func describe(p Plan) []string {
	var out []string
	for _, s := range p {
		out = append(out, s.String())
	}
	return out
}

func TestPlans(t *testing.T) {
	c := Config{Name: "warrend", Description: "Warren node", Executable: "/usr/local/bin/warrend",
		Args: []string{"--socket-group", "staff"}, Group: "staff"}
	tests := []struct {
		name string
		plan func(Config) (Plan, error)
		want []string
	}{
		{"systemd install", SystemdInstall, []string{
			"run groupadd -f --system staff",
			"write /etc/systemd/system/warrend.service (0644)",
			"run systemctl daemon-reload",
			"run systemctl enable --now warrend.service",
		}},
		{"systemd uninstall", SystemdUninstall, []string{
			"run systemctl disable --now warrend.service (may fail)",
			"remove /etc/systemd/system/warrend.service",
			"run systemctl daemon-reload",
		}},
		{"launchd install", LaunchdInstall, []string{
			`run /bin/sh -c dscl . -read "/Groups/$1" >/dev/null 2>&1 || dseditgroup -o create -r "Warren local API" "$1" sh staff`,
			"run launchctl bootout system/com.warrenmesh.warrend (may fail)",
			"write /Library/LaunchDaemons/com.warrenmesh.warrend.plist (0644)",
			"run launchctl bootstrap system /Library/LaunchDaemons/com.warrenmesh.warrend.plist",
		}},
		{"launchd uninstall", LaunchdUninstall, []string{
			"run launchctl bootout system/com.warrenmesh.warrend (may fail)",
			"remove /Library/LaunchDaemons/com.warrenmesh.warrend.plist",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tt.plan(c)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(p); !slices.Equal(got, tt.want) {
				t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
	t.Run("no group", func(t *testing.T) {
		c := c
		c.Group = ""
		p, _ := SystemdInstall(c)
		if strings.Contains(strings.Join(describe(p), "\n"), "groupadd") {
			t.Error("a plan without a group creates one")
		}
	})
	t.Run("service dir", func(t *testing.T) {
		c := c
		c.Dir = "/tmp/units"
		p, _ := SystemdInstall(c)
		if got := p[1].Write.Path; got != "/tmp/units/warrend.service" {
			t.Errorf("unit written to %s", got)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, bad := range []Config{{Name: "warrend", Executable: "warrend"}, {Name: "", Executable: "/x"}, {Name: "a/b", Executable: "/x"}} {
			if _, err := SystemdInstall(bad); err == nil {
				t.Errorf("SystemdInstall(%+v): no error", bad)
			}
			if _, err := LaunchdInstall(bad); err == nil {
				t.Errorf("LaunchdInstall(%+v): no error", bad)
			}
		}
		if _, err := SystemdUninstall(Config{Name: "warrend"}); err != nil {
			t.Errorf("uninstall needs no executable: %v", err)
		}
	})
}

// TestApply carries out a plan of real files and commands.
func TestApply(t *testing.T) {
	dir := t.TempDir()
	unit := filepath.Join(dir, "units", "x.service")
	log := filepath.Join(dir, "log")
	stale := filepath.Join(dir, "stale")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	appendLog := func(s string) []string { return []string{"sh", "-c", `echo "$1" >> "$2"`, "sh", s, log} }
	var ran []string
	p := Plan{
		{Cmd: appendLog("first")},
		{Write: &File{Path: unit, Data: []byte("[Unit]\n"), Mode: 0o644}},
		{Cmd: []string{"sh", "-c", "echo not running >&2; exit 3"}, MayFail: true},
		{Remove: stale},
		{Remove: filepath.Join(dir, "never-there")},
		{Desc: "call", Call: func(context.Context) error { ran = append(ran, "call"); return nil }},
		{Cmd: appendLog("last")},
	}
	var out bytes.Buffer
	if err := p.Apply(context.Background(), &out); err != nil {
		t.Fatalf("Apply: %v\n%s", err, out.String())
	}
	if b, _ := os.ReadFile(log); string(b) != "first\nlast\n" {
		t.Errorf("commands wrote %q", b)
	}
	if fi, err := os.Stat(unit); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("unit file: %v, %v", fi, err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale file not removed: %v", err)
	}
	if !slices.Equal(ran, []string{"call"}) {
		t.Errorf("calls: %v", ran)
	}
	if !strings.Contains(out.String(), "(went on: exit status 3: not running)") {
		t.Errorf("output does not report the failure that may happen:\n%s", out.String())
	}

	// A failing step that may not fail stops the plan and says why.
	p = Plan{{Cmd: []string{"sh", "-c", "echo no such unit >&2; exit 1"}}, {Cmd: appendLog("after")}}
	err := p.Apply(context.Background(), &out)
	if err == nil || !strings.Contains(err.Error(), "no such unit") {
		t.Errorf("Apply of a failing step: %v", err)
	}
	if b, _ := os.ReadFile(log); strings.Contains(string(b), "after") {
		t.Error("the plan went on after a failure")
	}
}

func TestPrint(t *testing.T) {
	p, err := SystemdInstall(Config{Name: "warrend", Description: "d", Executable: "/usr/sbin/warrend"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.Print(&out)
	s := out.String()
	for _, want := range []string{"write /etc/systemd/system/warrend.service (0644)\n--- /etc/systemd/system/warrend.service\n# warrend.service", "ExecStart=/usr/sbin/warrend\n", "run systemctl enable --now warrend.service\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("Print lacks %q:\n%s", want, s)
		}
	}
}
