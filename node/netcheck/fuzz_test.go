package netcheck

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// fuzzTx is the transaction the fuzzer's packets answer.
var fuzzTx = [stun.TransactionIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

func FuzzHandleSTUN(f *testing.F) {
	tx := stun.NewTransactionIDSetter(fuzzTx)
	seeds := []*stun.Message{
		stun.MustBuild(tx, stun.BindingSuccess, &stun.XORMappedAddress{IP: []byte{203, 0, 113, 1}, Port: 41641}, stun.Fingerprint),
		stun.MustBuild(tx, stun.BindingSuccess, &stun.XORMappedAddress{IP: netip.MustParseAddr("2001:db8::1").AsSlice(), Port: 1}),
		stun.MustBuild(tx, stun.BindingSuccess, &stun.MappedAddress{IP: []byte{198, 51, 100, 2}, Port: 2}),
		stun.MustBuild(tx, stun.BindingSuccess),
		stun.MustBuild(tx, stun.BindingError, stun.CodeBadRequest),
		stun.MustBuild(tx, stun.BindingRequest),
	}
	for _, m := range seeds {
		f.Add(m.Raw)
	}
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0x20, 0, 0xff})

	c := NewChecker(Config{Conn: &nopConn{}})
	from := netip.MustParseAddrPort("192.0.2.1:3478")
	f.Fuzz(func(t *testing.T, pkt []byte) {
		p := &stunProbe{region: 1, server: "fuzz", resp: make(chan stunReply, 1)}
		c.register(fuzzTx, p, time.Now())
		consumed := c.HandleSTUN(pkt, from)
		c.forget([][stun.TransactionIDSize]byte{fuzzTx})

		ours := stun.IsMessage(pkt) && [stun.TransactionIDSize]byte(pkt[8:20]) == fuzzTx
		if consumed != ours {
			t.Fatalf("consumed = %v, want %v", consumed, ours)
		}
		if !consumed {
			return
		}
		rep := <-p.resp // a consumed reply is always delivered
		if rep.err == nil && (!rep.mapped.IsValid() || rep.mapped.Addr().Is4In6() || rep.mapped.Port() == 0) {
			t.Fatalf("accepted an unusable mapped address %v", rep.mapped)
		}
		if rep.err != nil && rep.mapped.IsValid() {
			t.Fatalf("error %v with a mapped address %v", rep.err, rep.mapped)
		}
	})
}
