package export

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// selfSigned returns a TLS certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siem"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	must(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readFrames reads RFC 6587 octet-counted frames ("LEN SP MSG") until
// the stream ends or a frame is malformed.
func readFrames(r io.Reader, got func(msg string)) error {
	br := bufio.NewReader(r)
	for {
		lenText, err := br.ReadString(' ')
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
		if err != nil || n <= 0 || n > 1<<20 {
			return fmt.Errorf("bad frame length %q", lenText)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return err
		}
		got(string(msg))
	}
}

// TestSyslogTLS: over TLS, verified against the CA file, every event
// arrives as an octet-counted RFC 5424 frame.
func TestSyslogTLS(t *testing.T) {
	cert, caPEM := selfSigned(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(ca, caPEM, 0o600))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	must(t, err)
	var mu sync.Mutex
	var msgs []string
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				err := readFrames(c, func(m string) { mu.Lock(); msgs = append(msgs, m); mu.Unlock() })
				// The stream ends when the exporter stops (EOF, reset or
				// closed); only a malformed frame is the sink's fault.
				if err != nil && strings.Contains(err.Error(), "bad frame") {
					t.Errorf("receiver: %v", err)
				}
			}()
		}
	}()
	st, _ := openStore(t)
	const n = 80
	appendAudit(t, st, 1, n)
	stop := run(t, st, mustParse(t, fmt.Sprintf("syslog+tls://%s?ca-file=%s", ln.Addr(), ca)))
	poll.UntilTrue(t, 20*time.Second, "every event over TLS", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(msgs) >= n
	})
	stop() // closes the connection, ending the receiver's reader
	mu.Lock()
	defer mu.Unlock()
	for i, m := range msgs[:n] {
		want := fmt.Sprintf(`warren-coordinator %d audit [warren@32473 id="%s" action="node.register" outcome="`, os.Getpid(), AuditEventID(int64(i+1)))
		pri := "<110>1 " // log audit (13), informational
		if (i+1)%3 == 0 {
			pri = "<108>1 " // warning: the denied ones
		}
		if !strings.HasPrefix(m, pri) || !strings.Contains(m, want) || !strings.HasSuffix(m, "}") {
			t.Fatalf("message %d: %q; want <PRI>1 … %s … {json}", i, m, want)
		}
	}
}

// TestOpenErrors: a sink that cannot be built says why, and never shows
// a secret.
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	must(t, os.WriteFile(empty, nil, 0o600))
	notPEM := filepath.Join(dir, "ca.pem")
	must(t, os.WriteFile(notPEM, []byte("hunter2"), 0o600))
	t.Setenv("WARREN_TEST_EMPTY", "")
	tests := []struct{ url, want string }{
		{"https://h/x?secret-file=" + filepath.Join(dir, "missing"), "read secret file"},
		{"https://h/x?secret-file=" + empty, "is empty"},
		{"https://h/x?token-env=WARREN_TEST_EMPTY", "token variable WARREN_TEST_EMPTY is empty"},
		{"https://h/x?format=splunk", "needs its token"},
		{"syslog+tls://h:6514?ca-file=" + notPEM, "no PEM certificate"},
		{"file://" + empty + "/under-a-file.jsonl", "not a directory"},
	}
	for _, tt := range tests {
		s, err := Open(mustParse(t, tt.url))
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", tt.url)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%s): %v; want it to say %q", tt.url, err, tt.want)
		}
	}
}
