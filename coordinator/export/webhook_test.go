package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/testlog"
)

// outage is how long TestWebhookReceiverDown keeps the receiver stopped.
// The issue asks for 30 s (go test -run ReceiverDown -outage=30s); the
// default keeps CI short, and the mechanism is the same.
var outage = flag.Duration("outage", 3*time.Second, "how long TestWebhookReceiverDown stops the receiver")

// receiver is a SIEM's HTTP endpoint: it checks each batch's signature
// and counts the events it got by ID.
type receiver struct {
	t      *testing.T
	secret []byte
	format string
	token  string // the Authorization header expected

	mu       sync.Mutex
	seen     map[string]int    // event ID → deliveries
	docs     map[string]string // event ID → the event's JSON, first delivery
	badSig   int
	failNext int // answer this many more batches 503 after counting them
}

func newReceiver(t *testing.T, secret []byte, format, token string) *receiver {
	return &receiver{t: t, secret: secret, format: format, token: token, seen: map[string]int{}, docs: map[string]string{}}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !Verify(r.secret, body, req.Header.Get(SignatureHeader)) || req.Header.Get("Authorization") != r.token {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	docs, err := decodeBatch(r.format, body)
	if err != nil {
		r.t.Errorf("batch in format %s: %v", r.format, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for id, doc := range docs {
		r.seen[id]++
		if first, ok := r.docs[id]; !ok {
			r.docs[id] = doc
		} else if first != doc {
			r.t.Errorf("event %s delivered again with other content:\n%s\n%s", id, first, doc)
		}
	}
	if r.failNext > 0 {
		r.failNext--
		http.Error(w, "stored but not acknowledged", http.StatusServiceUnavailable)
		return
	}
	if r.format == FormatElastic {
		fmt.Fprint(w, `{"took":1,"errors":false,"items":[]}`)
	}
}

// decodeBatch returns the events of a batch by ID, as a receiver of the
// format reads them.
func decodeBatch(format string, body []byte) (map[string]string, error) {
	out := map[string]string{}
	add := func(raw json.RawMessage, wantID string) error {
		var e struct {
			Event struct{ ID string } `json:"event"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Event.ID == "" {
			return fmt.Errorf("event without an ID: %s", raw)
		}
		if wantID != "" && wantID != e.Event.ID {
			return fmt.Errorf("bulk _id %s for event %s", wantID, e.Event.ID)
		}
		out[e.Event.ID] = string(raw)
		return nil
	}
	switch format {
	case FormatJSON:
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			return nil, err
		}
		for _, raw := range batch {
			if err := add(raw, ""); err != nil {
				return nil, err
			}
		}
	case FormatSplunk:
		dec := json.NewDecoder(bytes.NewReader(body))
		for dec.More() {
			var hec struct {
				Time  float64         `json:"time"`
				Event json.RawMessage `json:"event"`
			}
			if err := dec.Decode(&hec); err != nil {
				return nil, err
			}
			if hec.Time < 1e9 {
				return nil, fmt.Errorf("HEC time %v", hec.Time)
			}
			if err := add(hec.Event, ""); err != nil {
				return nil, err
			}
		}
	case FormatElastic:
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var action struct {
				Index struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				} `json:"index"`
			}
			if err := json.Unmarshal(sc.Bytes(), &action); err != nil || action.Index.ID == "" || action.Index.Index != "audit" {
				return nil, fmt.Errorf("bulk action line %q", sc.Text())
			}
			if !sc.Scan() {
				return nil, errors.New("bulk action without a document")
			}
			if err := add(json.RawMessage(bytes.Clone(sc.Bytes())), action.Index.ID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// missing returns how many of events 1..n the receiver has not seen,
// and how many it saw more than once.
func (r *receiver) missing(n int) (missing, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i <= n; i++ {
		switch c := r.seen[AuditEventID(int64(i))]; {
		case c == 0:
			missing++
		case c > 1:
			dups++
		}
	}
	return missing, dups
}

// serve runs r on addr ("127.0.0.1:0" for any port) until the returned
// stop, which closes the listener and every connection.
func serve(t *testing.T, r *receiver, addr string) (string, func()) {
	t.Helper()
	var ln net.Listener
	poll.Until(t, 10*time.Second, "listen on "+addr, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	srv := &http.Server{Handler: r}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	stop := func() {
		srv.Close()
		<-done
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func writeSecret(t *testing.T, name, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	must(t, os.WriteFile(p, []byte(v+"\n"), 0o600))
	return p
}

// TestWebhookSignedBatches: each format's batches arrive signed with the
// shared secret (checked by the receiver), with the format's
// authorization, and every event arrives.
func TestWebhookSignedBatches(t *testing.T) {
	tests := []struct {
		format, query, auth string
	}{
		{FormatJSON, "", ""},
		{FormatJSON, "&token-file=TOKEN", "Bearer tok-123"},
		{FormatSplunk, "&format=splunk&token-file=TOKEN", "Splunk tok-123"},
		{FormatElastic, "&format=elastic&index=audit", ""},
	}
	for _, tt := range tests {
		t.Run(tt.format+tt.auth, func(t *testing.T) {
			st, _ := openStore(t)
			const n = 120
			appendAudit(t, st, 1, n)
			secret := "s3cret-hmac-key"
			rcv := newReceiver(t, []byte(secret), tt.format, tt.auth)
			addr, _ := serve(t, rcv, "127.0.0.1:0")
			q := strings.ReplaceAll(tt.query, "TOKEN", writeSecret(t, "token", "tok-123"))
			run(t, st, mustParse(t, fmt.Sprintf("http://%s/hook?secret-file=%s%s", addr, writeSecret(t, "secret", secret), q)))
			poll.Until(t, 20*time.Second, "every event at the receiver", func() error {
				if m, _ := rcv.missing(n); m > 0 {
					return fmt.Errorf("%d missing", m)
				}
				return nil
			})
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if rcv.badSig > 0 {
				t.Fatalf("%d batches with a bad signature or authorization", rcv.badSig)
			}
		})
	}
}

// TestWebhookReceiverDown: with the receiver stopped for a while (the
// outage flag) while events keep coming, and then started again on the
// same address, every event arrives, none lost (counted by ID); a batch
// the receiver stored but did not acknowledge comes again with the same
// IDs and content.
func TestWebhookReceiverDown(t *testing.T) {
	st, _ := openStore(t)
	secret := "hmac-key"
	rcv := newReceiver(t, []byte(secret), FormatJSON, "")
	addr, stop := serve(t, rcv, "127.0.0.1:0")
	run(t, st, mustParse(t, fmt.Sprintf("http://%s/hook?secret-file=%s&batch=40", addr, writeSecret(t, "secret", secret))))
	appendAudit(t, st, 1, 100)
	poll.Until(t, 20*time.Second, "the first 100 events", func() error {
		if m, _ := rcv.missing(100); m > 0 {
			return fmt.Errorf("%d missing", m)
		}
		return nil
	})
	stop()
	// The receiver is down: events keep coming during the outage.
	const during = 300
	back := time.Now().Add(*outage)
	for i := range during {
		appendAudit(t, st, 101+i, 1)
		time.Sleep(*outage / during / 2) // spread over the outage's first half
	}
	time.Sleep(time.Until(back)) // the outage itself: the measured bound, not a wait for an event
	if m, _ := rcv.missing(100); m > 0 {
		t.Fatalf("events lost before the outage: %d", m)
	}
	rcv.mu.Lock()
	rcv.failNext = 1 // the first batch after the outage is stored, not acknowledged
	rcv.mu.Unlock()
	serve(t, rcv, addr)
	const total = 100 + during
	var dups int
	poll.Until(t, 60*time.Second, "every event after the receiver came back", func() error {
		var m int
		if m, dups = rcv.missing(total); m > 0 {
			return fmt.Errorf("%d of %d missing", m, total)
		}
		return nil
	})
	if dups == 0 {
		t.Errorf("the unacknowledged batch was not delivered again")
	}
	t.Logf("outage %v: all %d events arrived, %d of them twice (same ID and content)", *outage, total, dups)
}

// TestSecretsNeverLogged: a webhook that keeps refusing makes the
// exporter log each failure, and neither the HMAC secret nor the token
// appears in those lines.
func TestSecretsNeverLogged(t *testing.T) {
	st, _ := openStore(t)
	appendAudit(t, st, 1, 5)
	var mu sync.Mutex
	var auth []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "no", http.StatusInternalServerError)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go srv.Serve(ln)
	defer srv.Close()
	const secret, token = "hmac-secret-do-not-log", "token-do-not-log"
	sink := mustParse(t, fmt.Sprintf("http://%s/hook?secret-file=%s&token-file=%s", ln.Addr(),
		writeSecret(t, "secret", secret), writeSecret(t, "token", token)))
	var logs testlog.Buffer
	x, err := New(Config{Sinks: []SinkConfig{sink}, Sources: []Source{AuditSource{Store: st}}, Cursors: st,
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Poll:   10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); x.Run(ctx) }()
	poll.UntilTrue(t, 20*time.Second, "three failed deliveries logged", func() bool {
		return strings.Count(logs.String(), "delivery failed") >= 3
	})
	cancel()
	<-done
	if out := logs.String(); strings.Contains(out, secret) || strings.Contains(out, token) {
		t.Fatalf("a secret in the log:\n%s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auth) == 0 || auth[0] != "Bearer "+token {
		t.Fatalf("the receiver got Authorization %q", auth)
	}
}
