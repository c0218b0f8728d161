//go:build windows

package osdns

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// setNRPT writes Warren's NRPT rule and makes the DNS client read it.
func (m *Manager) setNRPT(cfg Config) error {
	if err := m.saveRecord(&record{Method: MethodNRPT, Keys: []string{nrptKey}}); err != nil {
		return err
	}
	rule := nrptRuleFor(cfg)
	k, _, err := registry.CreateKey(registry.LOCAL_MACHINE, nrptKey, registry.SET_VALUE)
	if err != nil {
		return fmt.Errorf("osdns: NRPT: create %s: %w", nrptKey, err)
	}
	defer k.Close()
	for _, set := range []error{
		k.SetDWordValue("Version", 2),
		k.SetStringsValue("Name", rule.Names),
		k.SetStringValue("GenericDNSServers", rule.Servers),
		k.SetDWordValue("ConfigOptions", 8), // 8: use GenericDNSServers
		k.SetStringValue("IPSECCARestriction", ""),
	} {
		if set != nil {
			return fmt.Errorf("osdns: NRPT: write %s: %w", nrptKey, set)
		}
	}
	return refreshDNS()
}

func restoreNRPT(rec *record) error {
	var errs []error
	for _, key := range rec.Keys {
		if err := registry.DeleteKey(registry.LOCAL_MACHINE, key); err != nil && !errors.Is(err, registry.ErrNotExist) {
			errs = append(errs, fmt.Errorf("NRPT: delete %s: %w", key, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return refreshDNS()
}

var (
	userenv             = windows.NewLazySystemDLL("userenv.dll")
	procRefreshPolicyEx = userenv.NewProc("RefreshPolicyEx")
	dnsapi              = windows.NewLazySystemDLL("dnsapi.dll")
	procFlushCache      = dnsapi.NewProc("DnsFlushResolverCache")
)

// refreshDNS makes the DNS client service reread the rule table and
// forget cached answers.
func refreshDNS() error {
	const rpForce = 1
	if err := procRefreshPolicyEx.Find(); err == nil {
		procRefreshPolicyEx.Call(1, rpForce) // machine policy
	}
	if err := procFlushCache.Find(); err == nil {
		procFlushCache.Call()
	}
	return nil
}
