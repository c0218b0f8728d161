// Package nscoord runs a warren-coordinator binary inside a test network
// namespace, with a policy file written before it starts and the
// bootstrap admin's pre-auth key at hand, for the namespace tests of
// subnet routers, exit nodes and failover. It is for tests only and must
// never be imported by non-test code.
package nscoord

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// Admin is the bootstrap user every coordinator started here has.
const Admin = "admin@warren.internal"

// Coordinator is a running coordinator.
type Coordinator struct {
	ns  *netns.Namespace
	bin string
	// Dir is its state directory; URL its base URL.
	Dir, URL string
	// AdminKey is the bootstrap admin's reusable pre-auth key.
	AdminKey string
}

var bootstrapKey = regexp.MustCompile(`wpk_[a-z0-9]{32}`)

// Start runs bin/warren-coordinator (bin: a buildtest.Build directory)
// in ns, listening on listen (ip:port), with its state in dir/coordinator
// and policy as its policy file, and waits until it is ready. It stops
// when the test ends.
func Start(tb testing.TB, ns *netns.Namespace, bin, dir, listen, policy string) *Coordinator {
	tb.Helper()
	c := &Coordinator{ns: ns, bin: filepath.Join(bin, "warren-coordinator"), Dir: filepath.Join(dir, "coordinator"), URL: "http://" + listen}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "policy.hujson"), []byte(policy), 0o600); err != nil {
		tb.Fatal(err)
	}
	p := ns.Start(c.bin, "serve", "--state-dir", c.Dir, "--listen", listen, "--bootstrap-user", Admin)
	if _, err := p.WaitFor("Join a node", 30*time.Second); err != nil {
		tb.Fatal(err)
	}
	c.AdminKey = bootstrapKey.FindString(p.Output())
	return c
}

// Admin runs an admin command (warren-coordinator ARGS --state-dir DIR)
// and returns its output; it fails the test if the command fails.
func (c *Coordinator) Admin(args ...string) string {
	return c.ns.Run(c.bin, append(args, "--state-dir", c.Dir)...)
}

// Key creates a pre-auth key for user (keys create --user USER ARGS) and
// returns it.
func (c *Coordinator) Key(tb testing.TB, user string, args ...string) string {
	tb.Helper()
	var k struct{ Key string }
	out := c.Admin(append([]string{"keys", "create", "--user", user, "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Key == "" {
		tb.Fatalf("keys create --user %s %v: %q, %v", user, args, out, err)
	}
	return k.Key
}
