package recording

import (
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// TestUploadOverHTTP2: the coordinator serves HTTPS, where uploads run
// over HTTP/2: the early 201, a complete recording and a cut one behave
// as over HTTP/1.1.
func TestUploadOverHTTP2(t *testing.T) {
	d, err := NewDir(filepath.Join(t.TempDir(), "casts"))
	if err != nil {
		t.Fatal(err)
	}
	d.MaxBytes = 1000
	srv := httptest.NewUnstartedServer(Handler(d, claimed))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()

	s, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "tok", alice)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte(`{"version":2,"width":80,"height":24}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if in := getInfo(t, srv, alice.Session); in.Complete {
		t.Errorf("complete while the body is open: %+v", in)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if in, err := d.Stat(alice.Session); err != nil || !in.Complete || in.Size == 0 {
		t.Errorf("stored %+v %v", in, err)
	}

	cut, err := Start(startCtx(t), srv.Client(), srv.URL+"/v1/record", "tok", Meta{Session: "ssh-big"})
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("y", 99) + "\n")
	for i := 0; i < 10_000; i++ { // bounded: far past the limit
		if _, err := cut.Write(line); err != nil {
			break
		}
	}
	<-cut.Done()
	if err := cut.Err(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Err %v, want the size bound", err)
	}
	cut.Close()
	resp, err := srv.Client().Get(srv.URL + "/v1/recordings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("the test ran over %s, want HTTP/2", resp.Proto)
	}
}
