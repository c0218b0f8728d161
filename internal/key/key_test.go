package key

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	priv := NewNode()
	pub := priv.Public()
	if pub.IsZero() || priv.IsZero() {
		t.Fatal("fresh key is zero")
	}
	got, err := ParsePublic[NodeKind](pub.String())
	if err != nil || got != pub {
		t.Fatalf("ParsePublic(%s) = %v, %v", pub, got, err)
	}
	text, _ := priv.MarshalText()
	var back NodePrivate
	if err := back.UnmarshalText(text); err != nil || !back.Equal(priv) {
		t.Fatalf("private round trip: %v", err)
	}
}

// TestPrivateEqual checks the constant-time comparison, and that private
// keys cannot be compared any other way: `a == b` on two private keys does
// not compile (the zero-length func array in Private), and reflect agrees.
func TestPrivateEqual(t *testing.T) {
	a := NewNode()
	raw := a.Raw()
	flipped := raw
	flipped[17] ^= 1
	tests := []struct {
		name string
		x, y NodePrivate
		want bool
	}{
		{"same value", a, a, true},
		{"copy from raw bytes", a, PrivateFromRaw[NodeKind](raw), true},
		{"one bit differs", a, PrivateFromRaw[NodeKind](flipped), false},
		{"fresh key", a, NewNode(), false},
		{"zero and zero", NodePrivate{}, NodePrivate{}, true},
		{"key and zero", a, NodePrivate{}, false},
	}
	for _, tt := range tests {
		if got := tt.x.Equal(tt.y); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
		if got := tt.y.Equal(tt.x); got != tt.want {
			t.Errorf("%s: Equal (swapped) = %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, typ := range []reflect.Type{
		reflect.TypeFor[MachinePrivate](), reflect.TypeFor[NodePrivate](), reflect.TypeFor[DiscoPrivate](),
		reflect.TypeFor[ControlPrivate](), reflect.TypeFor[RelayPrivate](),
	} {
		if typ.Comparable() {
			t.Errorf("%v is comparable with ==; want only Equal", typ)
		}
	}
}

func TestKindsDoNotMix(t *testing.T) {
	disco := NewDisco().Public()
	if _, err := ParsePublic[NodeKind](disco.String()); err == nil {
		t.Fatal("a disco key parsed as a node key")
	}
}

func TestPrivateNeverPrinted(t *testing.T) {
	priv := NewMachine()
	raw := priv.Raw()
	hexed := fmt.Sprintf("%x", raw[:])
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", priv)
	for _, s := range []string{priv.String(), fmt.Sprint(priv), fmt.Sprintf("%v", priv), buf.String()} {
		if strings.Contains(s, hexed) {
			t.Fatalf("private key leaked in %q", s)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{"", "nodekey:", "nodekey:zz", "mkey:" + strings.Repeat("0", 64), "nodekey:" + strings.Repeat("g", 64)} {
		if _, err := ParsePublic[NodeKind](s); err == nil {
			t.Errorf("ParsePublic(%q) succeeded", s)
		}
	}
}

func FuzzParsePublic(f *testing.F) {
	f.Add(NewNode().Public().String())
	f.Add("nodekey:00")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePublic[NodeKind](s)
		if err != nil {
			return
		}
		if p.String() != strings.ToLower(s) {
			t.Fatalf("round trip %q -> %q", s, p.String())
		}
	})
}
