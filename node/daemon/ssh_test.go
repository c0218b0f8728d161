package daemon_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/poll"
	"github.com/warrenmesh/warren/internal/tstest/sshtest"
	"github.com/warrenmesh/warren/internal/tstest/testmesh"
	"github.com/warrenmesh/warren/node/daemon"
	"github.com/warrenmesh/warren/node/sshserver"
)

// TestSSHServesOnMeshAddress: warrend --ssh serves SSH on port 22 of the
// node's mesh address with a host key it keeps (0600) in its state
// directory, and admits nobody while the policy has no ssh rules, even
// a peer of the same user.
func TestSSHServesOnMeshAddress(t *testing.T) {
	m, k := meshWithKey(t)
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	dir := t.TempDir()
	server := startNode(t, dir, daemon.Config{SSH: true})
	up(t, laptop, m, "laptop", k)
	up(t, server, m, "server", k)
	waitPeers(t, laptop, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	conn, err := laptop.d.Dial(ctx, "tcp", "server:22")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline(ctx))
	banner, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-Warren") {
		t.Fatalf("banner %q, %v", banner, err)
	}
	st, err := os.Stat(filepath.Join(dir, sshserver.HostKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("host key: %v, %v", st, err)
	}

	conn2, err := laptop.d.Dial(ctx, "tcp", "server:22")
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(deadline(ctx))
	var banners []string
	_, _, _, err = ssh.NewClientConn(conn2, "server:22", &ssh.ClientConfig{
		User: "nobody", HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		BannerCallback: func(m string) error { banners = append(banners, m); return nil },
	})
	if err == nil || len(banners) != 1 || !strings.Contains(banners[0], "no ssh rule lets laptop") {
		t.Fatalf("login without ssh rules: %v, banners %q", err, banners)
	}
}

// deadline is ctx's deadline.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// TestSSHLoginThroughMesh: with the coordinator's ssh rules in the
// netmap, a peer logs in through the tunnel to warrend --ssh as a local
// user and runs a command as that user.
func TestSSHLoginThroughMesh(t *testing.T) {
	u := sshtest.User(t, "dmn")
	m := testmesh.New(t, testmesh.Options{Policy: `{
		"acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:*"]}],
		"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["autogroup:nonroot"]}],
	}`})
	ann := m.User("ann@example.com")
	k := m.AuthKey(registry.AuthKeyRequest{UserID: ann.ID, Reusable: true})
	laptop := startNode(t, t.TempDir(), daemon.Config{})
	server := startNode(t, t.TempDir(), daemon.Config{SSH: true})
	up(t, laptop, m, "laptop", k)
	up(t, server, m, "server", k)
	waitPeers(t, laptop, 1)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []byte
	poll.Until(t, wait, "a session through the mesh", func() error {
		conn, err := laptop.d.Dial(ctx, "tcp", "server:22")
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline(ctx))
		var banners []string
		sc, chans, reqs, err := ssh.NewClientConn(conn, "server:22", &ssh.ClientConfig{
			User: u.Username, HostKeyCallback: ssh.InsecureIgnoreHostKey(),
			BannerCallback: func(m string) error { banners = append(banners, m); return nil },
		})
		if err != nil { // the server's netmap may not have its SSH rules yet
			return fmt.Errorf("%w (banners %q)", err, banners)
		}
		c := ssh.NewClient(sc, chans, reqs)
		defer c.Close()
		s, err := c.NewSession()
		if err != nil {
			return err
		}
		defer s.Close()
		out, err = s.Output("id -un")
		return err
	})
	if string(out) != u.Username+"\n" {
		t.Fatalf("id -un: %q, want %s", out, u.Username)
	}
}
