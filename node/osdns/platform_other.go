//go:build !linux && !darwin && !windows

package osdns

// platformMethod is a managed resolv.conf on the other Unix systems.
func platformMethod() Method { return MethodResolvConf }

func (m *Manager) setPlatform(method Method, cfg Config) error { return errNotHere(method) }

func restorePlatform(rec *record) error { return errNotHere(rec.Method) }
