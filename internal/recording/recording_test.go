package recording

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/warrenmesh/warren/internal/asciicast"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// claimed is the auth function of a recorder that trusts what uploaders
// say about themselves.
func claimed(r *http.Request) (Meta, error) { return MetaFromRequest(r) }

// recorder runs Handler over a new Dir on a real loopback HTTP server.
func recorder(t *testing.T, auth func(*http.Request) (Meta, error), set func(*Dir)) (*Dir, *httptest.Server) {
	t.Helper()
	d, err := NewDir(filepath.Join(t.TempDir(), "casts"))
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(d)
	}
	if auth == nil {
		auth = claimed
	}
	srv := httptest.NewServer(Handler(d, auth))
	t.Cleanup(srv.Close)
	return d, srv
}

func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var alice = Meta{Session: "ssh-0123abcd", Node: "db1", User: "alice@example.com", LocalUser: "alice", Src: "laptop 100.64.0.2:50000", Started: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}

// TestUploadWhileSessionRuns streams a cast through Start/Write/Close,
// checks the recorder answered (and showed the recording) while the body
// was still open, and reads it back.
func TestUploadWhileSessionRuns(t *testing.T) {
	d, srv := recorder(t, nil, nil)
	m := alice
	m.User = "zoë@example.com" // non-ASCII crosses the header escaped
	s, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "", m)
	if err != nil {
		t.Fatal(err)
	}
	// Start returned: the 201 arrived although the body is still open.
	if want := srv.URL + "/v1/recordings/ssh-0123abcd"; s.Location() != want {
		t.Errorf("Location %q, want %q", s.Location(), want)
	}
	cw, err := asciicast.NewWriter(s, asciicast.Header{Width: 80, Height: 24}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Output([]byte("$ id\r\nuid=1000(alice)\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("\n\n")); err != nil { // blank lines: dropped
		t.Fatal(err)
	}
	in := getInfo(t, srv, "ssh-0123abcd")
	if in.Complete || in.Meta.User != "zoë@example.com" {
		t.Errorf("during the upload: %+v, want incomplete with alice's meta", in)
	}
	select {
	case <-s.Done():
		t.Fatalf("Done before Close: %v", s.Err())
	default:
	}
	if err := cw.Resize(100, 40); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s.Err() != nil {
		t.Errorf("Err after a good Close: %v", s.Err())
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}

	list, err := d.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("List: %v, %+v", err, list)
	}
	if in := list[0]; !in.Complete || in.ID != "ssh-0123abcd" || in.Meta != m || in.Reason != "" {
		t.Errorf("List: %+v, want complete with %+v", in, m)
	}
	resp, err := srv.Client().Get(s.Location())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if bytes.Contains(body, []byte("\n\n")) {
		t.Errorf("stored cast has blank lines:\n%s", body)
	}
	h, evs, err := asciicast.Parse(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("stored cast: %v\n%s", err, body)
	}
	if h.Width != 80 || len(evs) != 2 || evs[0].Data != "$ id\r\nuid=1000(alice)\r\n" || evs[1].Data != "100x40" {
		t.Errorf("stored cast: %+v %+v", h, evs)
	}
	if fi, err := os.Stat(filepath.Join(d.Path(), "ssh-0123abcd.cast")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cast file: %v %v, want mode 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(d.Path()); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory: %v %v, want mode 0700", fi.Mode(), err)
	}
}

func getInfo(t *testing.T, srv *httptest.Server, id string) Info {
	t.Helper()
	resp, err := srv.Client().Get(srv.URL + "/v1/recordings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []Info
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		if in.ID == id {
			return in
		}
	}
	t.Fatalf("recording %s not listed: %+v", id, list)
	return Info{}
}

// TestSizeBoundEndsUpload: a recording past MaxBytes is cut there, kept
// as incomplete, and the uploader learns of it through Done and Err.
func TestSizeBoundEndsUpload(t *testing.T) {
	d, srv := recorder(t, nil, func(d *Dir) { d.MaxBytes = 1000 })
	s, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "", alice)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 99) + "\n")
	for i := 0; i < 10_000; i++ { // bounded: far past the limit
		if _, err := s.Write(line); err != nil {
			break
		}
	}
	<-s.Done()
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Fatalf("Err: %v, want the size bound", err)
	}
	if err := s.Close(); err == nil {
		t.Error("Close after a cut upload succeeded")
	}
	in, err := d.Stat("ssh-0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != 1000 || in.Complete || !strings.Contains(in.Reason, "larger than") {
		t.Errorf("stored: %+v, want 1000 bytes, incomplete", in)
	}
}

// TestRecorderGoneMidUpload: when the recorder's connection dies, Done
// fires, Err says so, and Write fails.
func TestRecorderGoneMidUpload(t *testing.T) {
	d, srv := recorder(t, nil, nil)
	s, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "", alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte(`{"version":2,"width":80,"height":24}` + "\n")); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections()
	<-s.Done()
	if s.Err() == nil {
		t.Fatal("Err is nil after the recorder went away")
	}
	if _, err := s.Write([]byte("[1, \"o\", \"x\"]\n")); err == nil {
		t.Error("Write after the upload broke succeeded")
	}
	s.Close()
	srv.Close() // waits for the handler
	in, err := d.Stat("ssh-0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	if in.Complete || in.Reason == "" {
		t.Errorf("stored: %+v, want incomplete with a reason", in)
	}
}

// TestIdleUploadEnds: an uploader that sends nothing, not even
// keep-alives, is ended after IdleTimeout and told why.
func TestIdleUploadEnds(t *testing.T) {
	d, srv := recorder(t, nil, func(d *Dir) { d.IdleTimeout = 200 * time.Millisecond })
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/record", pr)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || resp.Header.Get(KeepaliveHeader) == "" {
		t.Fatalf("answer %s, keep-alive %q", resp.Status, resp.Header.Get(KeepaliveHeader))
	}
	var res Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Complete || !strings.Contains(res.Error, "idle") {
		t.Errorf("result %+v, want idle", res)
	}
	id := strings.TrimPrefix(resp.Header.Get("Location"), "/v1/recordings/")
	if in, err := d.Stat(id); err != nil || in.Complete {
		t.Errorf("stored: %+v %v", in, err)
	}
}

// TestKeepalives: a Stream with nothing to write sends lone newlines at
// the interval the recorder asked for, between lines only.
func TestKeepalives(t *testing.T) {
	got := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.Header().Set("Location", "/v1/recordings/x")
		w.Header().Set(KeepaliveHeader, "20ms")
		w.WriteHeader(http.StatusCreated)
		rc.Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			got <- line
		}
		json.NewEncoder(w).Encode(Result{ID: "x", Complete: true})
	}))
	defer srv.Close()
	s, err := Start(startCtx(t), srv.Client(), srv.URL, "", alice)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("head"))
	s.Write([]byte("er\n"))
	if l := <-got; l != "header\n" {
		t.Fatalf("first line %q", l)
	}
	for i := 0; i < 3; i++ {
		if l := <-got; l != "\n" {
			t.Fatalf("line %q, want a keep-alive", l)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStartRefusals: refused, unauthorised, busy and silent recorders
// make Start fail, without leaking anything.
func TestStartRefusals(t *testing.T) {
	deny := func(*http.Request) (Meta, error) { return Meta{}, errors.New("no token") }
	_, denying := recorder(t, deny, nil)
	if _, err := Start(startCtx(t), denying.Client(), denying.URL+"/v1/record", "tok", alice); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Start on a refusing recorder: %v, want 403", err)
	}

	_, busy := recorder(t, nil, func(d *Dir) { d.MaxUploads = 1 })
	first, err := Start(startCtx(t), busy.Client(), busy.URL+"/v1/record", "", alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(startCtx(t), busy.Client(), busy.URL+"/v1/record", "", alice); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("second upload beyond MaxUploads: %v, want 503", err)
	}
	first.Close()

	unblock := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-unblock:
		}
	}))
	defer silent.Close()
	defer close(unblock)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := Start(ctx, silent.Client(), silent.URL, "", alice); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start on a silent recorder: %v, want the context's deadline", err)
	}
}

// TestSessionIDNeverReplaces: a second upload naming the same session
// gets a new ID instead of overwriting the first recording.
func TestSessionIDNeverReplaces(t *testing.T) {
	d, srv := recorder(t, nil, nil)
	for _, m := range []Meta{alice, alice, {Session: "../../etc/passwd"}} {
		s, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "", m)
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte(m.Session + "\n"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	list, err := d.List()
	if err != nil || len(list) != 3 {
		t.Fatalf("List: %v %+v", err, list)
	}
	ids := map[string]bool{}
	for _, in := range list {
		ids[in.ID] = true
		if in.ID != "ssh-0123abcd" && !strings.HasPrefix(in.ID, "rec-") {
			t.Errorf("ID %q", in.ID)
		}
	}
	if len(ids) != 3 {
		t.Errorf("IDs %v, want three different", ids)
	}
}

// TestTraversalRefused: IDs that are not plain names never reach the file
// system, directly or through the handler.
func TestTraversalRefused(t *testing.T) {
	d, srv := recorder(t, nil, nil)
	secret := filepath.Join(filepath.Dir(d.Path()), "secret.cast")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"../secret", "..", ".", "", "a/b", `a\b`, "/etc/passwd", "x.cast", "-x", "a\x00b", strings.Repeat("a", MaxIDLen+1)} {
		if _, err := d.Open(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q): %v, want not found", id, err)
		}
	}
	for _, path := range []string{"/v1/recordings/..%2Fsecret", "/v1/recordings/%2e%2e%2fsecret", "/v1/recordings/../secret"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || string(body) == "secret" {
			t.Errorf("GET %s: %s %q", path, resp.Status, body)
		}
	}
}

func TestDropBlankLines(t *testing.T) {
	afterNL := true
	var out []byte
	for _, chunk := range []string{"\n\nab\n", "\ncd", "\n", "\n\ne\n"} {
		out = append(out, dropBlankLines([]byte(chunk), &afterNL)...)
	}
	if string(out) != "ab\ncd\ne\n" {
		t.Errorf("got %q", out)
	}
}

// FuzzValidID: an accepted ID names a file directly inside the
// directory, and every ID the directory makes for itself is accepted.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"ssh-0123", "..", "a/../b", `..\x`, "rec-ff", "C:x", "a.b", "\u00e9"} {
		f.Add(s)
	}
	dir := filepath.Join("srv", "recordings")
	f.Fuzz(func(t *testing.T, id string) {
		if !ValidID(id) {
			return
		}
		p := filepath.Join(dir, id+castExt)
		if filepath.Dir(p) != dir || filepath.Base(p) != id+castExt || strings.ContainsAny(id, `/\.:`) || filepath.IsAbs(id) {
			t.Fatalf("ValidID accepted %q, which names %s", id, p)
		}
	})
}

// FuzzMetaHeader: any Meta crosses the Warren-Recording-Meta header as a
// plain ASCII value and decodes to itself.
func FuzzMetaHeader(f *testing.F) {
	f.Add("ssh-01", "db1", "zoë@example.com", "alice", "laptop 100.64.0.2:1", int64(1700000000))
	f.Add("", "\x00\n", "\U0001F600", "\"", "\\", int64(-1))
	f.Fuzz(func(t *testing.T, session, node, user, local, src string, unix int64) {
		m := Meta{Session: session, Node: node, User: user, LocalUser: local, Src: src}
		if unix > 0 && unix < 1<<40 {
			m.Started = time.Unix(unix, 0).UTC()
		}
		v, err := m.headerValue()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] >= 0x7f {
				t.Fatalf("header value %q has byte %#x", v, v[i])
			}
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/record", nil)
		r.Header.Set(MetaHeader, v)
		got, err := MetaFromRequest(r)
		if len(v) > MaxMetaBytes {
			if err == nil {
				t.Fatal("an oversized header was accepted")
			}
			return
		}
		if err != nil {
			t.Fatalf("MetaFromRequest(%q): %v", v, err)
		}
		// JSON turns invalid UTF-8 into U+FFFD: compare only valid text.
		valid := true
		for _, s := range []string{session, node, user, local, src} {
			valid = valid && utf8.ValidString(s)
		}
		if valid && got != m {
			t.Fatalf("decoded %+v, want %+v", got, m)
		}
	})
}

// FuzzReadResult: whatever a recorder answers, the client reads it
// without panicking, and the first Result line it finds is what it reads.
func FuzzReadResult(f *testing.F) {
	f.Add([]byte(`{"id":"ssh-1","size":10,"complete":true}` + "\n"))
	f.Add([]byte("junk\n" + `{"id":"x","error":"recording larger than 5 bytes: cut there"}`))
	f.Add([]byte(`{"complete":tru`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, got, err := readResult(bytes.NewReader(body))
		if !got {
			if res != (Result{}) {
				t.Fatalf("no result found, yet %+v", res)
			}
			return
		}
		if err != nil {
			t.Fatalf("a result and an error: %+v %v", res, err)
		}
		// The reference: the first line (up to \n, without a \r) that
		// decodes as a Result.
		for _, line := range bytes.Split(body, []byte("\n")) {
			var want Result
			if json.Unmarshal(bytes.TrimSuffix(line, []byte("\r")), &want) == nil {
				if res != want {
					t.Fatalf("read %+v, the first Result line %q says %+v", res, line, want)
				}
				return
			}
		}
		t.Fatalf("read %+v from no Result line", res)
	})
}
