package engine

import (
	"net"
	"net/http"
	"syscall"
	"time"
)

// How a kernel-TUN-mode node sends all its non-mesh traffic to an exit
// node (Linux; like wg-quick): a routing table of its own, exitTable,
// holds default routes (IPv4 and IPv6) into the TUN device, and a rule
// at priority exitRulePref sends every packet NOT marked with exitMark to
// that table. Warren's own sockets carry exitMark (SO_MARK) and so keep
// the main table: the WireGuard/disco/STUN UDP socket (wireguard-go's
// fwmark), the relay connections and the control connection
// (MarkedHTTPClient). With allow-lan-access the table also holds a
// "throw" route for each network the host is directly on (the main
// table's link-scope routes not through the TUN device), so those fall
// through to the main table. Removing the rules and the table's routes
// restores the routing exactly as it was; a leftover from a crash is
// removed the next time the table is set up.
const (
	exitTable    = 52017
	exitMark     = 52017
	exitRulePref = 5210
)

// MarkedHTTPClient returns an HTTP client whose connections carry the
// mark that keeps them out of the exit-node routing table (Linux; on
// other OSes an ordinary client). The daemon uses it for the control
// connection in TUN mode.
func MarkedHTTPClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(network, address string, c syscall.RawConn) error { return markConn(c) }}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	return &http.Client{Timeout: timeout, Transport: tr}
}
