// Package nsbench measures TCP throughput between two network namespaces
// joined by a veth pair, several ways in one run, so the numbers compare:
// plain TCP over the veth, bare wireguard-go tunnels on kernel TUN devices
// (at wireguard-go's default MTU and at Warren's), and Warren in kernel TUN
// mode (two warrend processes and a coordinator). It is a benchmark (BenchmarkTCPThroughput, run by make
// bench) and needs root; it only builds and starts processes inside
// namespaces it creates, and removes them when it ends.
//
// The helper it runs in the namespaces (TCP sink and sender, bare
// wireguard-go endpoint) is the benchnode command beside it.
package nsbench
