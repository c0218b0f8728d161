// Package tstest holds, in its subpackages, what only tests and
// benchmarks use: the in-process mesh (testmesh), a real OpenID Provider
// (oidctest), network namespaces and NAT routers (netns, netns/natlab),
// namespace benchmarks (nsbench), local Unix users and the real OpenSSH
// client for SSH tests (sshtest), a manual clock (testclock), the one
// polling helper (poll), test logging (testlog), Prometheus scrapes
// (promscrape), stream benchmarks
// (streambench), headless Chromium for the console (browser), a helper
// that builds the binaries (buildtest), a real load balancer in front of
// coordinator replicas (lb) and one
// that runs the Windows ones under Wine (winetest).
// Production code must never import anything under it; everything else
// under internal/ is shared production code.
package tstest
