//go:build windows

package osdns

// platformMethod is an NRPT rule (the Name Resolution Policy Table).
func platformMethod() Method { return MethodNRPT }

func (m *Manager) setPlatform(method Method, cfg Config) error {
	if method != MethodNRPT {
		return errNotHere(method)
	}
	return m.setNRPT(cfg)
}

func restorePlatform(rec *record) error {
	if rec.Method != MethodNRPT {
		return errNotHere(rec.Method)
	}
	return restoreNRPT(rec)
}
