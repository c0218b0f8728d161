package version

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified},
		}}
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
		stamp   bool
	}{
		{"stamped wins", "v1.2.3", vcs(rev, "true"), "v1.2.3", true},
		{"stamped is trimmed", " v1.2.3-4-gabc-dirty\n", nil, "v1.2.3-4-gabc-dirty", true},
		{"clean revision", "", vcs(rev, "false"), "dev-0123456789ab", false},
		{"dirty revision", "", vcs(rev, "true"), "dev-0123456789ab-dirty", false},
		{"go install module@version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, "v0.9.0", false},
		{"devel without vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", false},
		{"no build info", "", nil, "dev", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.stamped, tt.bi)
			if got.Version != tt.want || got.Stamped != tt.stamp {
				t.Errorf("resolve(%q) = %q (stamped %v), want %q (stamped %v)", tt.stamped, got.Version, got.Stamped, tt.want, tt.stamp)
			}
			if got.Platform != runtime.GOOS+"/"+runtime.GOARCH || got.GoVersion == "" {
				t.Errorf("platform %q, go %q", got.Platform, got.GoVersion)
			}
		})
	}
}

// TestStampedBuild builds a tiny program with the -X flag the Makefile
// uses and checks that the binary reports the stamped version.
func TestStampedBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	bin := filepath.Join(t.TempDir(), "printversion")
	build := exec.Command("go", "build", "-o", bin, "-ldflags", "-X github.com/warrenmesh/warren/internal/version.Version=v9.8.7-test", "./testdata/printversion")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "v9.8.7-test" {
		t.Errorf("stamped binary says %q, want v9.8.7-test", got)
	}
}
