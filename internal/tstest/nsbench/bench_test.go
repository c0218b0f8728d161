package nsbench

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenmesh/warren/internal/tstest/netns"
)

// The benchmark's network: two namespaces, A (the sender) and B (the
// sink), on one veth pair; each tunnel gets its own subnet and UDP port.
const (
	vethA    = "10.210.0.1"
	vethB    = "10.210.0.2"
	sinkPort = "5201"
)

// BenchmarkTCPThroughput measures one TCP stream from namespace A to
// namespace B: over the veth, through bare wireguard-go tunnels (at
// wireguard-go's default MTU and at Warren's), and through Warren in
// kernel TUN mode. Each op is one MiB; MB/s is the sender's count of bytes
// the sink acknowledged over the time it took, and the of-veth and of-wg
// metrics are ratios to the veth and to the bare wireguard-go tunnel at its
// default MTU measured in the same run. The summary at the end (shown with
// -v) prints them side by side, and checks the target (Warren at least 80%
// of bare wireguard-go) on interleaved pairs of runs, which a busy machine
// skews less than runs one after the other.
func BenchmarkTCPThroughput(b *testing.B) {
	netns.Skip(b)
	bin := buildBenchnode(b)
	nsA, nsB := netns.New(b, "bench-a"), netns.New(b, "bench-b")
	netns.Connect(nsA, nsB, vethA+"/24", vethB+"/24")
	sink := nsB.Start(bin, "tcpsink", "-listen", ":"+sinkPort)
	if _, err := sink.WaitFor("listening", 10*time.Second); err != nil {
		b.Fatal(err)
	}

	wgDefault := startBareWireGuard(b, bin, nsA, nsB, bareTunnel{dev: "wgb0", subnet: "10.211.0", port: 51820, mtu: wgDefaultMTU})
	wgWarrenMTU := startBareWireGuard(b, bin, nsA, nsB, bareTunnel{dev: "wgb1", subnet: "10.212.0", port: 51821, mtu: warrenMTU})
	warren := startWarren(b, nsA, nsB)

	mbps := map[string]float64{}
	measure := func(name, dst string, ready func(*testing.B)) {
		b.Run(name, func(b *testing.B) {
			if ready != nil {
				ready(b)
			}
			v := sendBytes(b, nsA, bin, dst, b.N<<20)
			mbps[name] = v
			b.ReportMetric(v, "MB/s")
			if veth := mbps["veth"]; veth > 0 && name != "veth" {
				b.ReportMetric(v/veth, "of-veth")
			}
			if wg := mbps["wireguard-go"]; wg > 0 && name != "wireguard-go" && name != "veth" {
				b.ReportMetric(v/wg, "of-wg")
			}
		})
	}
	measure("veth", vethB, nil)
	measure("wireguard-go", wgDefault, nil)
	measure(fmt.Sprintf("wireguard-go-mtu%d", warrenMTU), wgWarrenMTU, nil)
	// Warren in kernel TUN mode: two warrend processes (see warren_test.go);
	// skipped until cmd/warrend exists.
	measure("warren-tun", warren.peerAddr, warren.check)

	// The runs above follow each other, and a busy machine can change
	// speed between them; the target is checked on interleaved pairs.
	var paired float64
	if mbps["warren-tun"] > 0 && mbps["wireguard-go"] > 0 {
		paired = pairedRatio(b, nsA, bin, wgDefault, warren.peerAddr, mbps["wireguard-go"])
	}
	b.Log(summary(mbps, warren, paired))
}

// pairedRounds is how many interleaved pairs pairedRatio measures.
const pairedRounds = 5

// pairedRatio sends about a second's worth of data (at baseMBps) to base
// and to other, alternately, pairedRounds times, swapping the order every
// round, and returns the median of other's throughput over base's.
func pairedRatio(b *testing.B, ns *netns.Namespace, bin, base, other string, baseMBps float64) float64 {
	b.Helper()
	size := max(16<<20, int(baseMBps*1e6)&^(1<<20-1))
	ratios := make([]float64, pairedRounds)
	for i := range ratios {
		var vb, vo float64
		if i%2 == 0 {
			vb, vo = sendBytes(b, ns, bin, base, size), sendBytes(b, ns, bin, other, size)
		} else {
			vo, vb = sendBytes(b, ns, bin, other, size), sendBytes(b, ns, bin, base, size)
		}
		ratios[i] = vo / vb
	}
	slices.Sort(ratios)
	return ratios[len(ratios)/2]
}

// summary puts the measurements side by side with their ratios.
func summary(mbps map[string]float64, warren warrenSetup, paired float64) string {
	var s strings.Builder
	fmt.Fprintf(&s, "single-stream TCP, namespace A -> B (MTU: veth 1500, wireguard-go %d and %d, warren-tun %d):\n",
		wgDefaultMTU, warrenMTU, warren.mtu)
	veth, wg := mbps["veth"], mbps["wireguard-go"]
	for _, name := range []string{"veth", "wireguard-go", fmt.Sprintf("wireguard-go-mtu%d", warrenMTU), "warren-tun"} {
		v, ok := mbps[name]
		if !ok {
			why := ""
			switch {
			case name == "warren-tun" && warren.skip != "":
				why = ": " + warren.skip
			case name == "warren-tun" && warren.err != nil:
				why = ": setup failed (see above)"
			}
			fmt.Fprintf(&s, "  %-22s  not measured%s\n", name, why)
			continue
		}
		fmt.Fprintf(&s, "  %-22s %9.1f MB/s", name, v)
		if veth > 0 {
			fmt.Fprintf(&s, "  %5.1f%% of veth", 100*v/veth)
		}
		if wg > 0 && name != "veth" {
			fmt.Fprintf(&s, "  %5.1f%% of wireguard-go", 100*v/wg)
		}
		s.WriteString("\n")
	}
	if paired > 0 {
		verdict := "meets"
		if paired < 0.8 {
			verdict = "MISSES"
		}
		fmt.Fprintf(&s, "target: warren-tun >= 80%% of wireguard-go: %s (%.1f%%, median of %d interleaved pairs)\n",
			verdict, 100*paired, pairedRounds)
	}
	return s.String()
}

// sendBytes has the sender in ns send n bytes to the sink at addr and
// returns the throughput it measured, in MB/s (10^6 bytes per second).
func sendBytes(b *testing.B, ns *netns.Namespace, bin, addr string, n int) float64 {
	b.Helper()
	out := ns.Run(bin, "tcpsend", "-to", net.JoinHostPort(addr, sinkPort), "-bytes", strconv.Itoa(n))
	var r struct {
		Bytes   uint64  `json:"bytes"`
		Seconds float64 `json:"seconds"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Seconds <= 0 {
		b.Fatalf("tcpsend printed %q: %v", out, err)
	}
	return float64(r.Bytes) / r.Seconds / 1e6
}

// buildBenchnode builds the helper command into a temporary directory.
func buildBenchnode(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "benchnode")
	goBuild(b, bin, "github.com/warrenmesh/warren/internal/tstest/nsbench/benchnode")
	return bin
}

// goBuild builds packages (without the race detector, whatever the test
// binary has) to out: a file for one package, a directory for several.
func goBuild(b *testing.B, out string, pkgs ...string) {
	b.Helper()
	cmd := exec.CommandContext(b.Context(), "go", append([]string{"build", "-o", out}, pkgs...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, msg)
	}
}
