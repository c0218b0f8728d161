package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
)

// TestStateDirEnv: admin commands find the admin socket through
// WARREN_STATE_DIR, --state-dir wins over it, and a missing socket says
// what to pass.
func TestStateDirEnv(t *testing.T) {
	dir := startCoordinator(t)
	mustCLI(t, "users", "create", "ann@example.com", "--admin", "--state-dir", dir)

	t.Setenv("WARREN_STATE_DIR", dir)
	if out := mustCLI(t, "users", "list"); !strings.Contains(out, "ann@example.com") {
		t.Fatalf("users list with WARREN_STATE_DIR:\n%s", out)
	}

	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		env  string
		args []string
	}{
		{"flag over env", dir, []string{"users", "list", "--state-dir", empty}},
		{"env", empty, []string{"users", "list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WARREN_STATE_DIR", tc.env)
			_, err := runCLI(t, tc.args...)
			if err == nil {
				t.Fatal("succeeded without a coordinator")
			}
			msg := err.Error()
			for _, want := range []string{filepath.Join(empty, "admin.sock"), "--state-dir DIR", "WARREN_STATE_DIR", "--server"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error does not say %q:\n%s", want, msg)
				}
			}
		})
	}
}

// TestRemoteCAFile: remote administration of a coordinator whose
// certificate a private CA signed fails with a hint to --ca-file, and works
// with --ca-file or WARREN_CA_FILE.
func TestRemoteCAFile(t *testing.T) {
	c, dir := startCoordinatorC(t)
	sd := "--state-dir=" + dir
	mustCLI(t, "users", "create", "ann@example.com", "--admin", sd)
	var k api.APIKey
	if err := json.Unmarshal([]byte(mustCLI(t, "apikeys", "create", "--user", "ann@example.com", "--json", sd)), &k); err != nil {
		t.Fatal(err)
	}

	caFile, cert := privateCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ServeHTTP(ctx, ln, c.AdminHandler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	server := "--server=https://" + ln.Addr().String()
	t.Setenv("WARREN_API_KEY", k.Key)

	_, err = runCLI(t, "users", "list", server)
	if err == nil || !strings.Contains(err.Error(), "--ca-file") || !strings.Contains(err.Error(), "WARREN_CA_FILE") {
		t.Fatalf("without the CA: %v", err)
	}
	if out := mustCLI(t, "users", "list", server, "--ca-file", caFile); !strings.Contains(out, "ann@example.com") {
		t.Fatalf("with --ca-file:\n%s", out)
	}
	t.Setenv("WARREN_CA_FILE", caFile)
	if out := mustCLI(t, "users", "list", server); !strings.Contains(out, "ann@example.com") {
		t.Fatalf("with WARREN_CA_FILE:\n%s", out)
	}
	// The environment's CA file does not get in the way of the socket.
	mustCLI(t, "users", "list", sd)

	t.Setenv("WARREN_CA_FILE", "")
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600))
	for _, bad := range [][]string{
		{"users", "list", server, "--ca-file", notPEM},
		{"users", "list", server, "--ca-file", filepath.Join(t.TempDir(), "missing.pem")},
		{"users", "list", sd, "--ca-file", caFile},
	} {
		if _, err := runCLI(t, bad...); err == nil {
			t.Errorf("%v succeeded", bad)
		}
	}
}

// privateCA makes a CA (written to a PEM file, whose path it returns) and
// a certificate for 127.0.0.1 that it signed.
func privateCA(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Warren test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err := x509.ParseCertificate(caDER)
	must(t, err)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "coordinator"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	must(t, err)
	path := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	return path, tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}
