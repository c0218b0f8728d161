package expose

import (
	"io"
	"net/http"
	"testing"

	"github.com/warrenmesh/warren/internal/wire"
)

// BenchmarkExpose measures one request loop (keep-alive GETs of a small
// answer) through an exposed port in plain TCP mode, the baseline, and
// in http-identity mode, where the node terminates HTTP and adds the
// identity headers; compare the two ns/op of one run.
func BenchmarkExpose(b *testing.B) {
	app := backend(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	node := wire.Node{ID: 2, Name: "ann-laptop", User: "ann@example.com", UserName: "Ann"}
	for _, mode := range []Mode{Plain, HTTPIdentity} {
		b.Run(mode.String(), func(b *testing.B) {
			addr := front(b, Config{Port: 80, Target: app, Mode: mode, Peer: peers(node), Conns: &Conns{}})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
