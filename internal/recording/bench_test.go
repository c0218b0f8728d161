package recording

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/asciicast"
)

// BenchmarkRecordSession records a session of 4 MiB of terminal output
// (4 KiB reads) as a cast: "file" writes it straight to a local file (the
// baseline: what recording costs without a recorder), "upload" streams
// it to a recorder over loopback HTTP and waits for it to be stored.
func BenchmarkRecordSession(b *testing.B) {
	const total, chunk = 4 << 20, 4 << 10
	out := make([]byte, chunk)
	for i := range out {
		out[i] = "abcdefgh ijklmnop\r\n"[i%19]
	}
	session := func(b *testing.B, w io.Writer) {
		cw, err := asciicast.NewWriter(w, asciicast.Header{Width: 80, Height: 24}, nil)
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < total; n += chunk {
			if err := cw.Output(out); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("file", func(b *testing.B) {
		b.SetBytes(total)
		dir := b.TempDir()
		for i := 0; i < b.N; i++ {
			f, err := os.Create(filepath.Join(dir, "s.cast"))
			if err != nil {
				b.Fatal(err)
			}
			session(b, f)
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(total)
		d, err := NewDir(filepath.Join(b.TempDir(), "casts"))
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(Handler(d, claimed))
		defer srv.Close()
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			s, err := Start(ctx, srv.Client(), srv.URL+"/v1/record", "", Meta{})
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			session(b, s)
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
