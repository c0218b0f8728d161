package derp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenmesh/warren/internal/key"
)

func TestExchange(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	ka, kb := key.NewNode(), key.NewNode()
	a, b := relay.dial(t, ka), relay.dial(t, kb)
	if a.ServerKey() != relay.PublicKey() {
		t.Fatalf("client sees relay key %v, want %v", a.ServerKey(), relay.PublicKey())
	}
	ctx := testCtx(t)
	for i, size := range []int{1, 1280, MaxPacketSize} {
		pkt := bytes.Repeat([]byte{byte(i + 1)}, size)
		if err := a.Send(ctx, kb.Public(), pkt); err != nil {
			t.Fatalf("a.Send: %v", err)
		}
		got := recvPacket(t, b)
		if got.Src != ka.Public() || !bytes.Equal(got.Data, pkt) {
			t.Fatalf("b got %d bytes from %v, want %d from %v", len(got.Data), got.Src, size, ka.Public())
		}
	}
	if err := b.Send(ctx, ka.Public(), []byte("reply")); err != nil {
		t.Fatalf("b.Send: %v", err)
	}
	if got := recvPacket(t, a); got.Src != kb.Public() || string(got.Data) != "reply" {
		t.Fatalf("a got %q from %v", got.Data, got.Src)
	}
	if err := a.Send(ctx, kb.Public(), make([]byte, MaxPacketSize+1)); err == nil {
		t.Fatal("Send accepted an oversize packet")
	}
	if rtt, err := a.Ping(ctx); err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v", rtt, err)
	}
	st := relay.Stats()
	if st.Clients != 2 || st.FramesForwarded != 4 || st.BytesForwarded != 1+1280+MaxPacketSize+5 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPeerGone(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	a := relay.dial(t, key.NewNode())
	nobody := key.NewNode().Public()
	ctx := testCtx(t)
	for range 3 {
		if err := a.Send(ctx, nobody, []byte("hello?")); err != nil {
			t.Fatal(err)
		}
	}
	barrier(t, a)
	m, err := a.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := m.(PeerGone); !ok || g.Key != nobody || g.Reason != PeerGoneNotHere {
		t.Fatalf("got %#v, want PeerGone for %v", m, nobody)
	}
	// The notices are rate limited: three sends, one notice.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if m, err := a.Recv(done); err == nil {
		t.Fatalf("second message %#v; PeerGone should be rate limited", m)
	}
	if st := relay.Stats(); st.DroppedUnknownDst != 3 {
		t.Fatalf("DroppedUnknownDst = %d, want 3", st.DroppedUnknownDst)
	}
}

func TestNotAdmitted(t *testing.T) {
	ok := key.NewNode()
	admit := newAdmitSet(ok)
	relay := newRelay(t, ServerConfig{Admit: admit.admit})
	relay.dial(t, ok)

	_, err := Dial(testCtx(t), relay.url, key.NewNode(), ClientOptions{})
	var se *ServerError
	if !errors.As(err, &se) || err.Error() != "relay refused node key: not admitted by the coordinator" {
		t.Fatalf("Dial of an unknown key: %v", err)
	}
	admit.fail(errors.New("coordinator unreachable"))
	_, err = Dial(testCtx(t), relay.url, ok, ClientOptions{})
	if err == nil || !strings.Contains(err.Error(), "admission check failed") {
		t.Fatalf("Dial while the check fails: %v", err)
	}
	if st := relay.Stats(); st.Refused != 2 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLyingClient(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	claimed, actual := key.NewNode(), key.NewNode()
	r := rawDial(t, relay.url)
	hello := r.mustRead(frameServerHello)
	ch, err := sealClientHello(actual, &hello)
	if err != nil {
		t.Fatal(err)
	}
	ch.key = claimed.Public().Raw() // claim A, seal with B
	r.writeFrame(ch)
	if text := r.expectClosed(); !strings.Contains(text, "not sealed with the claimed node key") {
		t.Fatalf("Error frame %q", text)
	}
	if st := relay.Stats(); st.HandshakeFailures != 1 || st.Clients != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReplayedHello(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	k := key.NewNode()
	first := rawDial(t, relay.url)
	recorded := first.handshake(k)

	second := rawDial(t, relay.url)
	second.mustRead(frameServerHello)
	second.writeFrame(recorded)
	if text := second.expectClosed(); !strings.Contains(text, "handshake failed") {
		t.Fatalf("replayed hello: Error frame %q", text)
	}
	if st := relay.Stats(); st.HandshakeFailures != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDisconnect(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	ka, kb := key.NewNode(), key.NewNode()
	a, b := relay.dial(t, ka), relay.dial(t, kb)
	relay.Disconnect(ka.Public())
	err := waitEnd(t, a)
	var se *ServerError
	if !errors.As(err, &se) || !strings.Contains(se.Reason, "node key removed") {
		t.Fatalf("kicked client ended with %v", err)
	}
	relay.Disconnect(ka.Public()) // no longer there: no-op
	if err := b.Send(testCtx(t), ka.Public(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m, err := b.Recv(testCtx(t)); err != nil || m.(PeerGone).Key != ka.Public() {
		t.Fatalf("after Disconnect: %#v, %v", m, err)
	}
	if st := relay.Stats(); st.Kicked != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRevalidate(t *testing.T) {
	ka, kb := key.NewNode(), key.NewNode()
	admit := newAdmitSet(ka, kb)
	relay := newRelay(t, ServerConfig{Admit: admit.admit})
	a, b := relay.dial(t, ka), relay.dial(t, kb)

	admit.fail(errors.New("coordinator down"))
	relay.Revalidate(testCtx(t)) // errors keep clients
	barrier(t, a)
	barrier(t, b)

	admit.fail(nil)
	admit.set(kb.Public(), false)
	relay.Revalidate(testCtx(t))
	if err := waitEnd(t, b); !strings.Contains(err.Error(), "no longer admitted") {
		t.Fatalf("denied client ended with %v", err)
	}
	barrier(t, a)
	if st := relay.Stats(); st.Kicked != 1 || st.Clients != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSameKeyReplaces(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	ka, kb := key.NewNode(), key.NewNode()
	old := relay.dial(t, ka)
	b := relay.dial(t, kb)
	fresh := relay.dial(t, ka)
	if err := waitEnd(t, old); !strings.Contains(err.Error(), "replaced by a newer connection") {
		t.Fatalf("old connection ended with %v", err)
	}
	if err := b.Send(testCtx(t), ka.Public(), []byte("to the laptop")); err != nil {
		t.Fatal(err)
	}
	if got := recvPacket(t, fresh); string(got.Data) != "to the laptop" {
		t.Fatalf("got %q", got.Data)
	}
	if st := relay.Stats(); st.Replaced != 1 || st.Clients != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestKeepAlive(t *testing.T) {
	relay := newRelay(t, ServerConfig{KeepAliveEvery: 250 * time.Millisecond})
	alive := relay.dial(t, key.NewNode())
	// A raw client that never answers pings is disconnected.
	silent := rawDial(t, relay.url)
	silent.handshake(key.NewNode())
	if text := silent.expectClosed(); !strings.Contains(text, "silent") {
		t.Fatalf("silent client: Error frame %q", text)
	}
	barrier(t, alive)
}

func TestClientNoticesSilentRelay(t *testing.T) {
	// A relay that completes the handshake, advertises 20ms keepalives
	// and then says nothing.
	relayKey := key.NewRelay()
	release := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		hello, _ := newServerHello(relayKey.Public())
		var ch frame
		var b []byte
		err = writeFrame(ctx, conn, &hello)
		if err == nil {
			b, err = readMessage(ctx, conn, make([]byte, maxHandshakeFrame+1))
		}
		if err == nil {
			err = decodeFrame(b, &ch)
		}
		if err != nil {
			t.Errorf("fake relay: %v", err)
			return
		}
		k, _, err := openClientHello(relayKey, &hello.challenge, &ch)
		if err != nil {
			t.Errorf("open hello: %v", err)
			return
		}
		info, _ := sealServerInfo(relayKey, k, &ch.nonce, 20*time.Millisecond)
		if err := writeFrame(ctx, conn, &info); err != nil {
			t.Errorf("fake relay: %v", err)
		}
		<-release
	}))
	defer ts.Close()
	defer close(release)
	c, err := Dial(testCtx(t), ts.URL, key.NewNode(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := waitEnd(t, c); !strings.Contains(err.Error(), "presumed dead") {
		t.Fatalf("client ended with %v", err)
	}
}

func TestHTTPEndpoints(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	base := strings.TrimSuffix(relay.url, "/derp")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/derp/probe"); code != http.StatusNoContent {
		t.Fatalf("probe: %d", code)
	}
	if code, body := get("/derp"); code != http.StatusUpgradeRequired || !strings.Contains(body, "Warren DERP relay") {
		t.Fatalf("plain GET: %d %q", code, body)
	}
	http.DefaultClient.CloseIdleConnections()

	// Dialling something that is not a relay says so.
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	_, err := Dial(testCtx(t), plain.URL, key.NewNode(), ClientOptions{HTTPClient: plain.Client()})
	if err == nil || !strings.Contains(err.Error(), "Warren relay") {
		t.Fatalf("Dial of a plain server: %v", err)
	}
	_, err = Dial(testCtx(t), "ftp://example.com", key.NewNode(), ClientOptions{})
	if err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("Dial ftp: %v", err)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	a := relay.dial(t, key.NewNode())
	// Past the handshake: a Close racing the handshake may cut the goodbye.
	barrier(t, a)
	half := rawDial(t, relay.url) // stays mid-handshake
	half.mustRead(frameServerHello)
	if err := relay.Close(); err != nil {
		t.Fatal(err)
	}
	if err := waitEnd(t, a); !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("client ended with %v", err)
	}
	half.expectClosed()
	if _, err := Dial(testCtx(t), relay.url, key.NewNode(), ClientOptions{}); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
	relay.Close() // idempotent
}

func TestDialContextEndsAfterDial(t *testing.T) {
	relay := newRelay(t, ServerConfig{})
	kb := key.NewNode()
	b := relay.dial(t, kb)
	ctx, cancel := context.WithCancel(context.Background())
	a, err := Dial(ctx, relay.url, key.NewNode(), ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cancel()
	if err := a.Send(testCtx(t), kb.Public(), []byte("still here")); err != nil {
		t.Fatalf("Send after the dial context ended: %v", err)
	}
	recvPacket(t, b)
	a.Close()
	if _, err := a.Recv(testCtx(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after Close: %v", err)
	}
	if err := a.Send(testCtx(t), kb.Public(), nil); err == nil {
		t.Fatal("Send after Close succeeded")
	}
}

// TestDisconnectDuringHandshake: a Disconnect that lands while the key's
// admission check is in flight still keeps the key out.
func TestDisconnectDuringHandshake(t *testing.T) {
	admitting, proceed := make(chan struct{}), make(chan struct{})
	relay := newRelay(t, ServerConfig{Admit: func(ctx context.Context, k key.NodePublic) (bool, error) {
		close(admitting)
		<-proceed
		return true, nil
	}})
	k := key.NewNode()
	dialErr := make(chan error, 1)
	go func() {
		c, err := Dial(testCtx(t), relay.url, k, ClientOptions{})
		if err == nil {
			c.Close()
		}
		dialErr <- err
	}()
	<-admitting
	relay.Disconnect(k.Public())
	close(proceed)
	if err := <-dialErr; err == nil || !strings.Contains(err.Error(), "node key removed") {
		t.Fatalf("Dial racing Disconnect: %v", err)
	}
}
