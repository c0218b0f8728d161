package disco

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/warrenmesh/warren/internal/key"
)

// fuzzKeys are fixed so the fuzzer's corpus stays meaningful between runs.
var (
	fuzzA = key.PrivateFromRaw[key.DiscoKind]([32]byte{1, 2, 3})
	fuzzB = key.PrivateFromRaw[key.DiscoKind]([32]byte{4, 5, 6})
)

func FuzzOpen(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(Seal(fuzzA, fuzzB.Public(), m))
	}
	f.Add([]byte(magic))
	f.Add(wgPacket(4, 80))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		from, m, err := Open(fuzzB, pkt)
		sk := Shared(fuzzB, fuzzA.Public())
		m2, err2 := sk.Open(pkt)
		if err != nil {
			if m != nil || !from.IsZero() {
				t.Fatalf("Open failed (%v) but returned %v, %v", err, from, m)
			}
			return
		}
		if from != fuzzA.Public() {
			// Only a packet sealed by A's key can open; the fuzzer cannot
			// forge one for another sender without its private key.
			t.Fatalf("opened a packet from unexpected sender %v", from)
		}
		if err2 != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("Open and SharedKey.Open disagree: %v/%v vs %v/%v", m, err, m2, err2)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		f.Add(encode(m))
	}
	f.Add([]byte{3, 9, 1})
	f.Add([]byte{1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b)
		if err != nil {
			if m != nil {
				t.Fatalf("decode failed (%v) but returned %v", err, m)
			}
			return
		}
		// Whatever decodes re-encodes and decodes to the same message
		// (not necessarily the same bytes: newer versions, mapped
		// addresses).
		again, err := decode(encode(m))
		if err != nil {
			t.Fatalf("re-decode of %#v: %v", m, err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("re-decode = %#v, want %#v", again, m)
		}
		// Our own version is canonical: its bytes round-trip exactly.
		if b[1] == Version && !bytes.Equal(encode(m), b) {
			t.Fatalf("encode(decode(%x)) = %x", b, encode(m))
		}
	})
}

func BenchmarkSealOpenShared(b *testing.B) {
	a, c := key.NewDisco(), key.NewDisco()
	ac, ca := Shared(a, c.Public()), Shared(c, a.Public())
	ping := &Ping{TxID: NewTxID(), NodeKey: key.NewNode().Public()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ca.Open(ac.Seal(ping)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealOpen(b *testing.B) {
	a, c := key.NewDisco(), key.NewDisco()
	ping := &Ping{TxID: NewTxID(), NodeKey: key.NewNode().Public()}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Open(c, Seal(a, c.Public(), ping)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSealCallMeMaybeShared(b *testing.B) {
	a, c := key.NewDisco(), key.NewDisco()
	ac := Shared(a, c.Public())
	eps := make([]netip.AddrPort, MaxEndpoints)
	for i := range eps {
		eps[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 41641)
	}
	m := &CallMeMaybe{Endpoints: eps}
	b.ReportAllocs()
	for b.Loop() {
		ac.Seal(m)
	}
}
