package wire

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/key"
)

func sampleNode() Node {
	return Node{
		ID: 7, Name: "laptop", Hostname: "Laptop", User: "ann@example.com",
		NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(),
		Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.7/32"), netip.MustParsePrefix("fd7a:115c:a1e0::6440:7/128")},
		Endpoints: []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:41641")},
		Online:    true, LastSeen: time.Unix(1700000000, 0).UTC(),
	}
}

func TestRoundTrip(t *testing.T) {
	online := true
	eps := []netip.AddrPort{netip.MustParseAddrPort("[2001:db8::1]:5")}
	msgs := []Message{
		&RegisterRequest{Version: ProtocolVersion, NodeKey: key.NewNode().Public(), DiscoKey: key.NewDisco().Public(), Hostname: "h", AuthKey: "wpk_x", Tags: []string{"tag:db"}},
		&RegisterResponse{Authorized: true, Self: ptr(sampleNode())},
		&MapRequest{Stream: true, Endpoints: eps},
		&MapResponse{Version: 3, Full: true, Self: ptr(sampleNode()), Peers: []Node{sampleNode()}, FilterSet: true,
			PacketFilter: []FilterRule{{SrcPrefixes: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, DstPorts: []PortRange{{Prefix: netip.MustParsePrefix("100.64.0.7/32"), First: 0, Last: 65535}}}},
			DNS: &DNSConfig{Records: []DNSRecord{{Name: "wiki.warren.internal", Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.9")}}},
				Routes: []DNSRoute{{Domain: "corp.example.com", Resolvers: []netip.AddrPort{netip.MustParseAddrPort("100.64.0.5:53")}}}}},
		&MapResponse{Version: 4, PeersRemoved: []NodeID{1, 2}, PeersPatched: []PeerPatch{{ID: 3, Online: &online, Endpoints: &eps}}},
		&UpdateRequest{Endpoints: eps, HomeRelay: 2},
		&Error{Code: CodeUnauthorized, Message: "no"},
		&KeepAlive{},
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		if err := WriteMessage(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range msgs {
		got, err := ReadMessage(&buf, MaxCoordinatorMessage)
		if err != nil {
			t.Fatalf("read %T: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip %T:\n got %+v\nwant %+v", want, got, want)
		}
	}
	if _, err := ReadMessage(&buf, MaxCoordinatorMessage); !errors.Is(err, io.EOF) {
		t.Fatalf("after last frame: %v, want EOF", err)
	}
}

func TestBadFrames(t *testing.T) {
	good, _ := Encode(&KeepAlive{})
	huge := EncodeRaw(TypeMapRequest, bytes.Repeat([]byte{' '}, 100))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"bad version", append([]byte{9}, good[1:]...), ErrFrameVersion},
		{"unknown type", EncodeRaw(200, []byte("{}")), ErrUnknownType},
		{"too large", huge, ErrTooLarge},
		{"truncated payload", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"truncated header", good[:3], io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadMessage(bytes.NewReader(tt.in), 50)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := Decode(TypeMapRequest, []byte(`{"stream": "yes"}`)); err == nil {
		t.Fatal("bad JSON field type accepted")
	}
}

func ptr[T any](v T) *T { return &v }

func FuzzReadMessage(f *testing.F) {
	for _, m := range []Message{&KeepAlive{}, &MapRequest{Stream: true}, &RegisterRequest{Hostname: "x"}, &MapResponse{Peers: []Node{sampleNode()}}} {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte{1, 4, 0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ReadMessage(bytes.NewReader(b), MaxNodeMessage)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same value.
		again, err := Encode(m)
		if err != nil {
			t.Fatalf("re-encode %T: %v", m, err)
		}
		if _, err := ReadMessage(bytes.NewReader(again), MaxCoordinatorMessage); err != nil {
			t.Fatalf("re-decode %T: %v", m, err)
		}
	})
}
