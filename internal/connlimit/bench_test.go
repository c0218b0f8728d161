package connlimit

import (
	"net"
	"testing"
)

// BenchmarkAccept compares accepting (and closing) a loopback connection
// through a Listener with caps against the bare listener, in the same run:
// report the ratio of ns/op.
func BenchmarkAccept(b *testing.B) {
	for _, tt := range []struct {
		name string
		wrap func(net.Listener) net.Listener
	}{
		{"bare", func(ln net.Listener) net.Listener { return ln }},
		{"capped", func(ln net.Listener) net.Listener { return New(ln, Config{PerSource: 1 << 20, Total: 1 << 20}) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ln := tt.wrap(raw)
			defer ln.Close()
			done := make(chan struct{})
			got := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					c.Close()
					got <- struct{}{}
				}
			}()
			for b.Loop() {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				<-got
				c.Close()
			}
			ln.Close()
			<-done
		})
	}
}
