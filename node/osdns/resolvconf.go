package osdns

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strings"
)

// managedHeader starts every resolv.conf Warren writes; Restore leaves a
// file without it alone (someone else rewrote it meanwhile).
const managedHeader = "# Managed by Warren (warrend) while the node is up: it sends the mesh's names to Warren's\n" +
	"# resolver, which forwards the rest to the original nameservers. warren down restores the original.\n"

// ResolvConf is what Warren reads from a resolv.conf.
type ResolvConf struct {
	Nameservers []netip.Addr
	Search      []string
	Options     []string // the options lines, verbatim
}

// maxResolvConf bounds what is parsed; resolv.conf files are tiny.
const maxResolvConf = 64 << 10

// ParseResolvConf reads nameserver, search (and domain) and options lines;
// anything else, and addresses that do not parse, are skipped.
func ParseResolvConf(b []byte) ResolvConf {
	var rc ResolvConf
	if len(b) > maxResolvConf {
		b = b[:maxResolvConf]
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), maxResolvConf)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			host, _, _ := strings.Cut(f[1], "%") // a zone: fe80::1%eth0
			if a, err := netip.ParseAddr(host); err == nil {
				rc.Nameservers = append(rc.Nameservers, a.Unmap())
			}
		case "search", "domain": // the last one wins, as in glibc
			rc.Search = append([]string(nil), f[1:]...)
		case "options":
			rc.Options = append(rc.Options, strings.Join(f, " "))
		}
	}
	return rc
}

// managedResolvConf is the resolv.conf Warren writes: its nameservers,
// the mesh domain searched first (then the original search domains), and
// the original options.
func managedResolvConf(cfg Config, orig ResolvConf) []byte {
	var b bytes.Buffer
	b.WriteString(managedHeader)
	for _, ns := range cfg.Nameservers[:min(len(cfg.Nameservers), 3)] { // glibc reads three
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	search := routingDomains(cfg.Domains)[:1]
	for _, s := range orig.Search {
		if !strings.EqualFold(strings.TrimSuffix(s, "."), search[0]) {
			search = append(search, s)
		}
	}
	fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	for _, o := range orig.Options {
		b.WriteString(o + "\n")
	}
	return b.Bytes()
}

func (m *Manager) setResolvConf(cfg Config) error {
	path := m.opts.ResolvConf
	rec := m.rec
	if rec == nil {
		rec = &record{Method: MethodResolvConf, Path: path}
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("osdns: %w", err)
		default:
			rec.Existed = true
			rec.Mode = uint32(fi.Mode().Perm())
			if fi.Mode()&fs.ModeSymlink != 0 {
				if rec.Symlink, err = os.Readlink(path); err != nil {
					return fmt.Errorf("osdns: %w", err)
				}
			}
			if rec.Original, err = os.ReadFile(path); err != nil && rec.Symlink == "" {
				return fmt.Errorf("osdns: read %s: %w", path, err)
			}
			if bytes.HasPrefix(rec.Original, []byte(managedHeader)) {
				return fmt.Errorf("osdns: %s is already managed by Warren, but no record of its original is in %s: restore it by hand", path, m.opts.StateDir)
			}
		}
		if err := m.saveRecord(rec); err != nil {
			return err
		}
	}
	content := managedResolvConf(cfg, ParseResolvConf(rec.Original))
	if rec.Symlink != "" {
		// Replace the link itself (its target may belong to another
		// program, e.g. systemd's stub file); Restore puts the link back.
		if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("osdns: replace the symlink %s: %w", path, err)
			}
		}
	}
	return writeInPlace(path, content, 0o644)
}

// writeInPlace writes path's contents without replacing the file, so a
// bind-mounted resolv.conf (containers, ip netns exec) keeps working.
func writeInPlace(path string, b []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("osdns: write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("osdns: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("osdns: write %s: %w", path, err)
	}
	return f.Close()
}

func (m *Manager) restoreResolvConf(rec *record) error {
	cur, err := os.ReadFile(rec.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read %s: %w", rec.Path, err)
	case !bytes.HasPrefix(cur, []byte(managedHeader)):
		m.log.Warn("resolv.conf was rewritten by someone else while Warren managed it; leaving it as it is", "path", rec.Path)
		return nil
	}
	switch {
	case rec.Symlink != "":
		if err := os.Remove(rec.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Symlink(rec.Symlink, rec.Path)
	case !rec.Existed:
		if err := os.Remove(rec.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := writeInPlace(rec.Path, rec.Original, fs.FileMode(rec.Mode)); err != nil {
		return err
	}
	return os.Chmod(rec.Path, fs.FileMode(rec.Mode))
}
