package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteReplacesWithPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "new" {
		t.Fatalf("content %q, %v", b, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := Write(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

// TestRemoveStale: the temporary files a killed writer leaves are removed,
// and nothing else, whatever its name looks like.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	// A real leftover: what Write creates before it is killed.
	left, err := os.CreateTemp(dir, "state"+tempSuffix+"*")
	if err != nil {
		t.Fatal(err)
	}
	left.Close()
	tests := []struct {
		name   string
		remove bool
	}{
		{filepath.Base(left.Name()), true},
		{"state.tmp0", true},
		{"cache.json.tmp4294967295", true},
		{"state", false},
		{"state.tmp", false},
		{"state.tmp12a", false},
		{"state.tmp-1", false},
		{"state.tmp 1", false},
		{"state.tmp1.bak", false},
		{"xstate.tmp1", false},
		{"other.tmp1", false},
		{"cache.json.tmp", false},
	}
	for _, tt := range tests {
		if tt.name != filepath.Base(left.Name()) {
			if err := os.WriteFile(filepath.Join(dir, tt.name), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "state.tmp9"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "state"), filepath.Join(dir, "state.tmp8")); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(dir, "state", "cache.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, err := os.Lstat(filepath.Join(dir, tt.name))
		if gone := os.IsNotExist(err); gone != tt.remove {
			t.Errorf("%s: removed %v, want %v", tt.name, gone, tt.remove)
		}
	}
	for _, keep := range []string{"state.tmp9", "state.tmp8"} {
		if _, err := os.Lstat(filepath.Join(dir, keep)); err != nil {
			t.Errorf("%s (not a regular file) removed: %v", keep, err)
		}
	}
	if len(removed) != 3 {
		t.Errorf("RemoveStale reported %q, want 3 names", removed)
	}
	if r, err := RemoveStale(filepath.Join(dir, "missing")); err != nil || r != nil {
		t.Errorf("missing dir: %v, %v", r, err)
	}
}
