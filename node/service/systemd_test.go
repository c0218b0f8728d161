package service

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite ops/systemd/warrend.service and ops/launchd/com.warrenmesh.warrend.plist from their generators")

// packaged is the unit Warren's .deb and .rpm ship (see
// ops/packaging/warren.yaml): the same flags install-service carries by
// default on Linux, plus extra flags from /etc/default/warrend.
var packaged = Config{
	Name:            "warrend",
	Description:     "Warren node daemon (zero-trust mesh)",
	Executable:      "/usr/sbin/warrend",
	Args:            []string{"--state-dir", "/var/lib/warren", "--socket-group", "warren"},
	WritableDirs:    []string{"/var/lib/warren", "/run/warren"},
	EnvironmentFile: "/etc/default/warrend",
	ArgsVariable:    "WARREND_ARGS",
}

// TestPackagedUnit keeps ops/systemd/warrend.service the generator's
// output, so that the packaged unit and install-service's agree.
func TestPackagedUnit(t *testing.T) {
	path := filepath.Join("..", "..", "ops", "systemd", "warrend.service")
	got := SystemdUnit(packaged)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from SystemdUnit (go test ./node/service -run TestPackagedUnit -update rewrites it):\n%s", path, got)
	}
	for _, line := range []string{
		"ExecStart=/usr/sbin/warrend --state-dir /var/lib/warren --socket-group warren $WARREND_ARGS\n",
		"EnvironmentFile=-/etc/default/warrend\n",
		"StateDirectoryMode=0700\n",
		"WantedBy=multi-user.target\n",
	} {
		if !bytes.Contains(got, []byte(line)) {
			t.Errorf("unit lacks %q", line)
		}
	}
}

func TestSystemdUnitInstallService(t *testing.T) {
	c := Config{Name: "warrend", Description: "d", Executable: "/opt/warren/bin/warrend",
		Args: []string{"--state-dir", "/var/lib/warren", "--expose", "80=127.0.0.1:8080", "--hostname-note", "ann's laptop"}}
	unit := string(SystemdUnit(c))
	want := `ExecStart=/opt/warren/bin/warrend --state-dir /var/lib/warren --expose 80=127.0.0.1:8080 --hostname-note "ann's laptop"` + "\n"
	if !strings.Contains(unit, want) {
		t.Errorf("unit lacks %q:\n%s", want, unit)
	}
	if strings.Contains(unit, "EnvironmentFile") || strings.Contains(unit, "$") {
		t.Errorf("install-service unit has an environment file:\n%s", unit)
	}
}

func TestSystemdWritableDirs(t *testing.T) {
	for _, tt := range []struct {
		dirs []string
		want []string
	}{
		{[]string{"/var/lib/warren", "/run/warren"}, []string{"StateDirectory=warren\nStateDirectoryMode=0700\n", "RuntimeDirectory=warren\nRuntimeDirectoryMode=0755\n"}},
		{[]string{"/var/lib/warren/", "/run/warren/a"}, []string{"StateDirectory=warren\n", "RuntimeDirectory=warren/a\n"}},
		{[]string{"/srv/warren state", "/tmp/w"}, []string{"ReadWritePaths=\"/srv/warren state\"\n", "ReadWritePaths=/tmp/w\n"}},
	} {
		unit := string(SystemdUnit(Config{Name: "warrend", Executable: "/x", WritableDirs: tt.dirs}))
		for _, w := range tt.want {
			if !strings.Contains(unit, w) {
				t.Errorf("unit for %q lacks %q:\n%s", tt.dirs, w, unit)
			}
		}
	}
	p, err := SystemdInstall(Config{Name: "warrend", Executable: "/x", WritableDirs: []string{"/var/lib/warren", "/srv/w"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := p[0].String(); got != "create /srv/w (0700)" {
		t.Errorf("first step %q, want the ReadWritePaths directory created", got)
	}
}

func TestSystemdQuote(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/var/lib/warren", "/var/lib/warren"},
		{"--expose", "--expose"},
		{"80=127.0.0.1:8080", "80=127.0.0.1:8080"},
		{"[::1]:1055", `"[::1]:1055"`},
		{"", `""`},
		{"a b", `"a b"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\x`, `"C:\\x"`},
		{"100%", `"100%%"`},
		{"$HOME", `"$$HOME"`},
		{"a\nb", `"a\nb"`},
	} {
		if got := SystemdQuote(tt.in); got != tt.want {
			t.Errorf("SystemdQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// unquoteSystemd is a test-side reading of one ExecStart word as systemd
// reads it (quotes, backslash escapes, doubled % and $).
func unquoteSystemd(s string) (string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return s, true
	}
	if len(s) < 2 || !strings.HasSuffix(s, `"`) {
		return "", false
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			i++
			if i == len(s) {
				return "", false
			}
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			default:
				b.WriteByte(s[i])
			}
		case '%', '$':
			if i+1 == len(s) || s[i+1] != c {
				return "", false
			}
			b.WriteByte(c)
			i++
		case '"':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

func FuzzSystemdQuote(f *testing.F) {
	for _, s := range []string{"", "a b", `"\%$`, "/x", "\n\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		q := SystemdQuote(s)
		if got, ok := unquoteSystemd(q); !ok || got != s {
			t.Fatalf("SystemdQuote(%q) = %s reads back as %q (ok %v)", s, q, got, ok)
		}
		if strings.ContainsAny(q, "\r\n") {
			t.Fatalf("SystemdQuote(%q) = %q spans lines", s, q)
		}
	})
}

// TestSystemdAnalyzeVerify has systemd itself read the units, where
// systemd-analyze is installed (it needs no running systemd).
func TestSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	exe, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand for warrend")
	}
	dir := t.TempDir()
	packagedHere := packaged
	packagedHere.Executable = exe
	for _, tt := range []struct {
		name string
		c    Config
	}{
		{"packaged", packagedHere},
		{"install-service", Config{Name: "warrend", Description: "Warren node daemon", Executable: exe,
			Args:         []string{"--state-dir", dir, "--socket-group", "", "--expose", `80=[::1]:8080`, "--note", `100% "$HOME" \ tab	end`},
			WritableDirs: []string{dir, "/run/warren"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tt.c.Name+".service")
			if err := os.WriteFile(path, SystemdUnit(tt.c), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s\n--- unit:\n%s", err, out, SystemdUnit(tt.c))
			}
		})
	}
}
