//go:build darwin

package osdns

// platformMethod is macOS's per-domain resolver files (resolver(5)).
func platformMethod() Method { return MethodResolverDir }

func (m *Manager) setPlatform(method Method, cfg Config) error { return errNotHere(method) }

func restorePlatform(rec *record) error { return errNotHere(rec.Method) }
