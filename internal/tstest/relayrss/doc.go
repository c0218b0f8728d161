// Package relayrss measures what an idle client costs a relay process in
// resident memory (VmRSS), for Warren's warren-derp and, as the baseline in
// the same run, Tailscale's derper (built from the separate module in
// derperbaseline, so Warren's own go.mod never depends on tailscale.com).
//
// It holds only a benchmark (go test -run '^$' -bench . -benchtime 1x);
// make test runs nothing here. Each relay runs as its own process and its
// clients in another, so the figure is the relay's alone: goroutine stacks,
// buffers, runtime overhead and all. It must never talk to anything but
// loopback, and never make Warren's module depend on the baseline's.
package relayrss
