package testmesh

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/warrenmesh/warren/coordinator"
	"github.com/warrenmesh/warren/node/localapi"
)

// TestCoordinatorStartsWhileProviderDown: a coordinator whose identity
// provider cannot be reached at start still starts and serves everything
// else (a server joins with its pre-auth key); sign-ins are refused as
// retryable meanwhile, and once the provider answers, a person signs in
// without the coordinator being restarted (issue 12, defect 6).
func TestCoordinatorStartsWhileProviderDown(t *testing.T) {
	var up atomic.Bool
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !up.Load() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	m := New(t, Options{Policy: idpGroupPolicy, OIDC: &OIDCOptions{Users: idpUsers},
		Coordinator: coordinator.Config{Login: coordinator.LoginConfig{OIDC: &coordinator.OIDCConfig{
			HTTPClient: &http.Client{Transport: tr, Timeout: loginWait}}}}})
	db, _ := dbServer(t, m) // the control plane works without the provider
	if db.Netmap().Self.Name == "" {
		t.Fatal("the server did not join")
	}
	if n := m.Coord.Failures().Counts()["login.oidc"]; n != 0 {
		t.Fatalf("%d login.oidc failures before anyone signed in", n)
	}

	d := m.AddDaemon("ann-laptop")
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Up(localapi.UpRequest{}, m.AsOIDCUser("ann"))
		done <- err
	}()
	up.Store(true)
	if err := <-done; err != nil {
		t.Fatalf("warren up once the provider answers: %v", err)
	}
	if st := d.Status(context.Background()); st.State != localapi.StateRunning || !strings.HasPrefix(st.Self.User, "ann") {
		t.Fatalf("status after the sign-in: %+v", st)
	}
}
