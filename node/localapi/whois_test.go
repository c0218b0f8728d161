//go:build !windows

package localapi

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// TestWhoIs: an answer, a 404 that the client turns into ErrNotFound, a
// 400 for no address, and the raw call any program can make.
func TestWhoIs(t *testing.T) {
	b := newFakeBackend()
	want := WhoIs{Address: "127.0.0.1:51234", MeshSource: netip.MustParseAddrPort("100.64.0.2:40000"), User: "ann@example.com",
		Node: WhoIsNode{ID: 2, Name: "ann-laptop"}, Port: 80, Rule: "acls[0]", Via: "expose 80 http-identity"}
	b.whois = map[string]WhoIs{want.Address: want}
	ts := startServer(t, b, Config{})
	got, err := ts.client.WhoIs(testCtx(t), want.Address)
	if err != nil || got.User != want.User || got.MeshSource != want.MeshSource || got.Node.Name != "ann-laptop" || got.Rule != "acls[0]" || got.Via != want.Via {
		t.Errorf("WhoIs = %+v, %v", got, err)
	}
	_, err = ts.client.WhoIs(testCtx(t), "127.0.0.1:1")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unknown address: %v, want ErrNotFound naming it", err)
	}
	if _, err := ts.client.WhoIs(testCtx(t), ""); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("no address: %v", err)
	}
	// The raw call, as the README shows it with curl.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", ts.path)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://local/v0/whois?addr=127.0.0.1:51234")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" ||
		!strings.Contains(string(body), `"user":"ann@example.com"`) || !strings.Contains(string(body), `"meshSource":"100.64.0.2:40000"`) {
		t.Errorf("raw call: %s %s", resp.Status, body)
	}
}
