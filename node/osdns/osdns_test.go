package osdns

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var meshNS = []netip.Addr{netip.MustParseAddr("100.100.100.100"), netip.MustParseAddr("fd7a:115c:a1e0::53")}

const origResolvConf = "# written by DHCP\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nsearch corp.lan\noptions edns0 trust-ad\n\n"

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		in      string
		ns      []string
		search  []string
		options []string
	}{
		{origResolvConf, []string{"10.0.0.53", "fe80::1"}, []string{"corp.lan"}, []string{"options edns0 trust-ad"}},
		{"domain a.example\nsearch b.example c.example # comment\nnameserver 1.1.1.1 ; x\n", []string{"1.1.1.1"}, []string{"b.example", "c.example"}, nil},
		{"nameserver\nnameserver not-an-ip\n  nameserver   ::ffff:192.0.2.1\n", []string{"192.0.2.1"}, nil, nil},
		{"", nil, nil, nil},
	}
	for _, tt := range tests {
		rc := ParseResolvConf([]byte(tt.in))
		var ns []string
		for _, a := range rc.Nameservers {
			ns = append(ns, a.String())
		}
		if !slices.Equal(ns, tt.ns) || !slices.Equal(rc.Search, tt.search) || !slices.Equal(rc.Options, tt.options) {
			t.Errorf("ParseResolvConf(%q) = %v %v %v, want %v %v %v", tt.in, ns, rc.Search, rc.Options, tt.ns, tt.search, tt.options)
		}
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte(origResolvConf))
	f.Add([]byte("search\x00a\nnameserver 1.2.3.4%\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rc := ParseResolvConf(b)
		for _, a := range rc.Nameservers {
			if !a.IsValid() || a.Is4In6() {
				t.Fatalf("nameserver %v", a)
			}
		}
		// What Warren writes from it parses back to Warren's resolver.
		out := managedResolvConf(Config{Nameservers: meshNS, Domains: []string{"warren.internal"}}, rc)
		back := ParseResolvConf(out)
		if !slices.Equal(back.Nameservers, meshNS) || len(back.Search) == 0 || back.Search[0] != "warren.internal" {
			t.Fatalf("managed file %q parses as %+v", out, back)
		}
	})
}

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestResolvConf: Set writes a managed file sending everything to
// Warren's resolver, Upstreams are the original nameservers, and Restore
// (or a restart after a crash) puts the original back byte for byte: a
// regular file with its mode, a symlink with its target, or no file.
func TestResolvConf(t *testing.T) {
	for _, kind := range []string{"file", "symlink", "missing"} {
		for _, how := range []string{"restore", "restart after a crash"} {
			t.Run(kind+"/"+how, func(t *testing.T) {
				dir, state := t.TempDir(), t.TempDir()
				path := filepath.Join(dir, "resolv.conf")
				target := filepath.Join(dir, "stub-resolv.conf")
				switch kind {
				case "file":
					if err := os.WriteFile(path, []byte(origResolvConf), 0o640); err != nil {
						t.Fatal(err)
					}
					os.Chmod(path, 0o640)
				case "symlink":
					if err := os.WriteFile(target, []byte(origResolvConf), 0o644); err != nil {
						t.Fatal(err)
					}
					if err := os.Symlink("stub-resolv.conf", path); err != nil {
						t.Fatal(err)
					}
				}
				opts := Options{StateDir: state, Method: MethodResolvConf, ResolvConf: path}
				m := newManager(t, opts)
				cfg := Config{Interface: "warren0", Nameservers: meshNS, Domains: []string{"Warren.Internal.", "corp.example.com"}}
				if err := m.Set(cfg); err != nil {
					t.Fatal(err)
				}
				got := read(t, path)
				rc := ParseResolvConf([]byte(got))
				if !strings.HasPrefix(got, managedHeader) || !slices.Equal(rc.Nameservers, meshNS) {
					t.Fatalf("managed resolv.conf %q", got)
				}
				wantSearch := []string{"warren.internal"}
				var wantUp []netip.AddrPort
				if kind != "missing" {
					wantSearch = append(wantSearch, "corp.lan")
					wantUp = []netip.AddrPort{netip.MustParseAddrPort("10.0.0.53:53"), netip.MustParseAddrPort("[fe80::1]:53")}
					if !slices.Contains(rc.Options, "options edns0 trust-ad") {
						t.Errorf("options lost: %q", got)
					}
				}
				if !slices.Equal(rc.Search, wantSearch) {
					t.Errorf("search %q, want %q", rc.Search, wantSearch)
				}
				if kind == "symlink" && read(t, target) != origResolvConf {
					t.Fatal("the symlink's target was written")
				}
				// Set again (the routes changed): the original stays the
				// first call's.
				if err := m.Set(Config{Interface: "warren0", Nameservers: meshNS[:1], Domains: []string{"warren.internal"}}); err != nil {
					t.Fatal(err)
				}
				if up := m.Upstreams(); !slices.Equal(up, wantUp) {
					t.Errorf("upstreams %v, want %v", up, wantUp)
				}
				if how == "restore" {
					if err := m.Restore(); err != nil {
						t.Fatal(err)
					}
				} else {
					newManager(t, opts) // the next start restores first
				}
				switch kind {
				case "file":
					fi, err := os.Lstat(path)
					if err != nil || fi.Mode() != 0o640 || read(t, path) != origResolvConf {
						t.Fatalf("after restore: %v %v %q", fi.Mode(), err, read(t, path))
					}
				case "symlink":
					if l, err := os.Readlink(path); err != nil || l != "stub-resolv.conf" {
						t.Fatalf("after restore: link %q, %v", l, err)
					}
				case "missing":
					if _, err := os.Lstat(path); !os.IsNotExist(err) {
						t.Fatalf("after restore the file exists: %v", err)
					}
				}
				if _, err := os.Stat(filepath.Join(state, RecordFile)); !os.IsNotExist(err) {
					t.Fatalf("the record is left: %v", err)
				}
			})
		}
	}
}

// TestResolvConfRewrittenMeanwhile: a file someone else rewrote while
// Warren managed it is left alone on restore.
func TestResolvConfRewrittenMeanwhile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	os.WriteFile(path, []byte(origResolvConf), 0o644)
	m := newManager(t, Options{StateDir: dir, Method: MethodResolvConf, ResolvConf: path})
	if err := m.Set(Config{Nameservers: meshNS, Domains: []string{"warren.internal"}}); err != nil {
		t.Fatal(err)
	}
	const dhcp = "nameserver 192.0.2.99\n"
	os.WriteFile(path, []byte(dhcp), 0o644)
	if err := m.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != dhcp {
		t.Fatalf("restore overwrote a newer file: %q", got)
	}
}

// TestResolverDir is macOS's method, run on any OS: a file per domain,
// a domain no longer routed goes back, and Restore (or a restart) leaves
// the directory as it was.
func TestResolverDir(t *testing.T) {
	for _, how := range []string{"restore", "restart after a crash"} {
		t.Run(how, func(t *testing.T) {
			state, dir := t.TempDir(), filepath.Join(t.TempDir(), "resolver")
			os.MkdirAll(dir, 0o755)
			const theirs = "nameserver 192.0.2.1\n"
			os.WriteFile(filepath.Join(dir, "corp.example.com"), []byte(theirs), 0o644)
			os.WriteFile(filepath.Join(dir, "other.example"), []byte(theirs), 0o644)
			opts := Options{StateDir: state, Method: MethodResolverDir, ResolverDir: dir}
			m := newManager(t, opts)
			if err := m.Set(Config{Nameservers: meshNS, Domains: []string{"warren.internal", "corp.example.com"}}); err != nil {
				t.Fatal(err)
			}
			want := resolverFileHeader + "nameserver 100.100.100.100\nnameserver fd7a:115c:a1e0::53\n"
			for _, d := range []string{"warren.internal", "corp.example.com"} {
				if got := read(t, filepath.Join(dir, d)); got != want {
					t.Fatalf("%s: %q", d, got)
				}
			}
			if err := m.Set(Config{Nameservers: meshNS, Domains: []string{"warren.internal"}}); err != nil {
				t.Fatal(err)
			}
			if got := read(t, filepath.Join(dir, "corp.example.com")); got != theirs {
				t.Fatalf("unrouted domain's file: %q", got)
			}
			if how == "restore" {
				if err := m.Restore(); err != nil {
					t.Fatal(err)
				}
			} else {
				newManager(t, opts)
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
				if got := read(t, filepath.Join(dir, e.Name())); got != theirs {
					t.Errorf("%s: %q", e.Name(), got)
				}
			}
			if !slices.Equal(names, []string{"corp.example.com", "other.example"}) {
				t.Fatalf("files left: %v", names)
			}
		})
	}
}

func TestBadRecordStopsStart(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, RecordFile), []byte("{not json"), 0o600)
	if _, err := New(Options{StateDir: dir}); err == nil || !strings.Contains(err.Error(), "not a record") {
		t.Fatalf("New with a broken record: %v", err)
	}
}

func TestNRPTRule(t *testing.T) {
	r := nrptRuleFor(Config{Nameservers: meshNS, Domains: []string{"Warren.Internal", "corp.example.com.", "warren.internal"}})
	if !slices.Equal(r.Names, []string{".warren.internal", ".corp.example.com"}) || r.Servers != "100.100.100.100; fd7a:115c:a1e0::53" {
		t.Fatalf("%+v", r)
	}
	if !bytes.Contains([]byte(nrptKey), []byte(`Dnscache\Parameters\DnsPolicyConfig\{`)) {
		t.Fatal(nrptKey)
	}
}
