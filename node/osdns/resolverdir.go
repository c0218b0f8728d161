package osdns

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// resolverFileHeader starts every /etc/resolver file Warren writes.
const resolverFileHeader = "# Managed by Warren (warrend) while the node is up; warren down removes it.\n"

// resolverFile is macOS's per-domain resolver file (resolver(5)) for
// cfg's nameservers.
func resolverFile(cfg Config) []byte {
	var b bytes.Buffer
	b.WriteString(resolverFileHeader)
	for _, ns := range cfg.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	return b.Bytes()
}

// setResolverDir writes one file per domain into the resolver directory,
// recording first each file it is about to write (and what was there),
// and restores the files of domains no longer routed.
func (m *Manager) setResolverDir(cfg Config) error {
	dir := m.opts.ResolverDir
	rec := &record{Method: MethodResolverDir}
	if m.rec != nil {
		rec.Files = slices.Clone(m.rec.Files)
	}
	var want []string
	for _, d := range routingDomains(cfg.Domains) {
		if strings.ContainsAny(d, `/\`) || d == ".." {
			return fmt.Errorf("osdns: domain %q cannot name a file", d)
		}
		p := filepath.Join(dir, d)
		want = append(want, p)
		if slices.ContainsFunc(rec.Files, func(f savedFile) bool { return f.Path == p }) {
			continue
		}
		sf := savedFile{Path: p}
		b, err := os.ReadFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("osdns: %w", err)
		default:
			sf.Existed, sf.Original = true, b
		}
		rec.Files = append(rec.Files, sf)
	}
	if err := m.saveRecord(rec); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("osdns: %w", err)
	}
	for _, p := range want {
		if err := os.WriteFile(p, resolverFile(cfg), 0o644); err != nil {
			return fmt.Errorf("osdns: %w", err)
		}
	}
	// Domains routed before but not now go back to what they were.
	var keep []savedFile
	for _, f := range rec.Files {
		if slices.Contains(want, f.Path) {
			keep = append(keep, f)
			continue
		}
		if err := restoreFile(f); err != nil {
			return err
		}
	}
	rec.Files = keep
	return m.saveRecord(rec)
}

func (m *Manager) restoreResolverDir(rec *record) error {
	var errs []error
	for _, f := range rec.Files {
		errs = append(errs, restoreFile(f))
	}
	return errors.Join(errs...)
}

// restoreFile puts f back as it was, unless someone replaced Warren's file.
func restoreFile(f savedFile) error {
	cur, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if f.Existed {
			return os.WriteFile(f.Path, f.Original, 0o644)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(cur, []byte(resolverFileHeader)) {
		return nil // not Warren's any more
	}
	if f.Existed {
		return os.WriteFile(f.Path, f.Original, 0o644)
	}
	return os.Remove(f.Path)
}
