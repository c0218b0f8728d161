//go:build linux

package osdns

import "os"

// platformMethod is systemd-resolved when it runs (it keeps its runtime
// directory and the system bus is there), otherwise a managed resolv.conf.
func platformMethod() Method {
	if _, err := os.Stat("/run/systemd/resolve/io.systemd.Resolve"); err != nil {
		return MethodResolvConf
	}
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
		return MethodResolvConf
	}
	return MethodResolved
}

func (m *Manager) setPlatform(method Method, cfg Config) error {
	if method != MethodResolved {
		return errNotHere(method)
	}
	return m.setResolved(cfg)
}

func restorePlatform(rec *record) error {
	if rec.Method != MethodResolved {
		return errNotHere(rec.Method)
	}
	return restoreResolved(rec)
}
