package noise

import (
	"io"
	"testing"
)

// BenchmarkTransport measures Write+Read throughput of 64 KiB chunks through
// an in-memory pipe: encryption, decryption and framing, without a network.
func BenchmarkTransport(b *testing.B) {
	const chunk = 64 << 10
	client, server, _ := pipePair(b, 16)
	data := make([]byte, chunk)
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()

	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if _, err := client.Write(data); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	buf := make([]byte, chunk)
	for range b.N {
		if _, err := io.ReadFull(server, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
