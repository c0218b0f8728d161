package natlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// cmdTimeout bounds every command natlab runs.
const cmdTimeout = 10 * time.Second

// tables is the iptables backend and the conntrack tool that work here.
type tables struct {
	restore   string // path of iptables-nft-restore, iptables-legacy-restore, ...
	conntrack string // path of conntrack
}

var (
	probeOnce   sync.Once
	probeTables *tables
	probeErr    error
)

// skipWithoutTables returns the iptables backend and conntrack tool to
// use, found once per test binary by trying them in a scratch namespace,
// and skips tb, saying what to install, when none works.
func skipWithoutTables(tb testing.TB) *tables {
	tb.Helper()
	probeOnce.Do(func() { probeTables, probeErr = probe() })
	if probeErr != nil {
		tb.Skipf("skipping: natlab needs working iptables NAT and conntrack in network namespaces: %v", probeErr)
	}
	return probeTables
}

// probe finds an iptables-restore that can load every kind of router rule
// (trying the nft backend first, then legacy, then whatever iptables is),
// and a conntrack that can flush a namespace's table.
func probe() (*tables, error) {
	name := netns.Prefix + "natlab-probe-" + randomHex()
	ctx, cancel := context.WithTimeout(context.Background(), 4*cmdTimeout)
	defer cancel()
	if out, err := osexec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, bytes.TrimSpace(out))
	}
	defer osexec.Command("ip", "netns", "del", name).Run()

	t := &tables{conntrack: lookPath("conntrack")}
	if t.conntrack == "" {
		return nil, errors.New("conntrack is not installed (apt-get install conntrack)")
	}
	if out, err := execName(ctx, name, "", t.conntrack, "-F"); err != nil {
		return nil, fmt.Errorf("conntrack -F fails (is nf_conntrack available?): %v: %s", err, out)
	}
	var errs []error
	for _, backend := range []string{"iptables-nft", "iptables-legacy", "iptables"} {
		restore := lookPath(backend + "-restore")
		if restore == "" {
			continue
		}
		err := loadName(ctx, name, restore, rules("lo", Symmetric, rebindRanges[0]))
		if err == nil {
			err = loadName(ctx, name, restore, rules("lo", BlockUDP, [2]uint16{}))
		}
		if err == nil {
			t.restore = restore
			return t, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, errors.New("iptables is not installed (apt-get install iptables)")
	}
	return nil, fmt.Errorf("no iptables backend can load the NAT rules: %w", errors.Join(errs...))
}

// lookPath finds a tool on PATH or in the sbin directories, which a
// non-login root shell may lack; it returns "" if there is none.
func lookPath(tool string) string {
	if p, err := osexec.LookPath(tool); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := osexec.LookPath(filepath.Join(dir, tool)); err == nil {
			return p
		}
	}
	return ""
}

// load replaces the tables named in rules inside ns, in one step.
func (t *tables) load(ctx context.Context, ns *netns.Namespace, rules string) error {
	return loadName(ctx, ns.Name, t.restore, rules)
}

func loadName(ctx context.Context, ns, restore, rules string) error {
	_, err := execName(ctx, ns, rules, restore, "-w", "5")
	return err
}

// forgetUDP deletes ns's UDP conntrack entries. conntrack -D fails when
// there were none, which is fine.
func (t *tables) forgetUDP(ctx context.Context, ns *netns.Namespace) error {
	out, err := exec(ctx, ns, "", t.conntrack, "-D", "-p", "udp")
	if err != nil && strings.Contains(out, " 0 flow entries have been deleted") {
		return nil
	}
	return err
}

// exec runs a command inside ns with stdin as its input, and returns its
// combined output; the error carries the output too. Without a deadline in
// ctx it gives up after cmdTimeout.
func exec(ctx context.Context, ns *netns.Namespace, stdin string, args ...string) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmdTimeout)
		defer cancel()
	}
	return execName(ctx, ns.Name, stdin, args...)
}

func execName(ctx context.Context, ns, stdin string, args ...string) (string, error) {
	cmd := osexec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.WaitDelay = time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out.String(), fmt.Errorf("in %s: %s: %w: %s", ns, strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.String(), nil
}

func randomHex() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
