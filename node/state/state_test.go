package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCreatesPrivateFileAndKeepsKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "warrend")
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	s.Hostname, s.WantRunning, s.ListenPort = "laptop", true, 41641
	if err := Save(dir, s); err != nil {
		t.Fatal(err)
	}
	again, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.MachineKey.Equal(s.MachineKey) || !again.NodeKey.Equal(s.NodeKey) || !again.DiscoKey.Equal(s.DiscoKey) {
		t.Fatal("keys changed across save and load")
	}
	if again.Hostname != "laptop" || !again.WantRunning || again.ListenPort != 41641 {
		t.Fatalf("settings lost: %+v", again)
	}
}

func TestLoadRefusesReadableFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, FileName), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a 0644 state file: %v, want a refusal naming chmod 600", err)
	}
}

func TestLoadRejectsCorruptFileAndKeepsIt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	for _, bad := range []string{"", "{", `{"version":1}`, `{"version":9,"machineKey":"x"}`, `{"version":1,"extra":true}`} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil {
			t.Fatalf("Load(%q) succeeded", bad)
		}
		b, _ := os.ReadFile(path)
		if string(b) != bad {
			t.Fatalf("Load(%q) changed the file to %q", bad, b)
		}
	}
}

func TestSaveRefusesInvalidState(t *testing.T) {
	s := New()
	s.Coordinator = "https://warren.example.com" // without its key
	if err := Save(t.TempDir(), s); err == nil {
		t.Fatal("saved a coordinator without its pinned key")
	}
}

func TestPrivateKeysAreRedactedInFormatting(t *testing.T) {
	s := New()
	raw, _ := s.NodeKey.MarshalText()
	if strings.Contains(strings.ToLower(s.NodeKey.String()), strings.TrimPrefix(string(raw), "privnodekey:")) {
		t.Fatal("String reveals the node private key")
	}
}

func FuzzParse(f *testing.F) {
	good, _ := os.ReadFile("testdata/good.state")
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"machineKey":"privmkey:zz"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if s.MachineKey.IsZero() || s.NodeKey.IsZero() || s.DiscoKey.IsZero() {
			t.Fatal("Parse accepted a state without keys")
		}
	})
}
