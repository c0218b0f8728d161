// Package version says which build of Warren is running: the version the
// release build stamped into the binary, or else what the Go toolchain
// recorded about the source it was built from (the VCS revision, and
// whether the tree had uncommitted changes).
//
// It must never read anything at run time but the binary's own build
// information: no files, no network, no environment.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is stamped at build time with
//
//	go build -ldflags "-X github.com/warrenmesh/warren/internal/version.Version=v1.2.3"
//
// (the Makefile stamps `git describe --tags --always --dirty`). Empty when
// the build did not stamp it; then String falls back to the build
// information.
var Version string

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`            // stamped, or derived from the VCS revision
	Revision  string `json:"revision,omitempty"` // VCS revision the build recorded, if any
	Modified  bool   `json:"modified,omitempty"` // the build's tree had uncommitted changes
	GoVersion string `json:"go_version"`         // toolchain that built the binary
	Platform  string `json:"platform"`           // GOOS/GOARCH
	Stamped   bool   `json:"stamped,omitempty"`  // Version came from -ldflags
}

// Get returns the running binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return resolve(Version, bi)
}

// String returns the version alone, as printed by --version.
func String() string { return Get().Version }

// resolve is Get with its inputs passed in, for tests.
func resolve(stamped string, bi *debug.BuildInfo) Info {
	info := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	switch stamped = strings.TrimSpace(stamped); {
	case stamped != "":
		info.Version, info.Stamped = stamped, true
	case info.Revision != "":
		info.Version = "dev-" + short(info.Revision)
		if info.Modified {
			info.Version += "-dirty"
		}
	case bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)":
		// Installed with `go install module@version`: the module's version.
		info.Version = bi.Main.Version
	default:
		info.Version = "dev"
	}
	return info
}

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
