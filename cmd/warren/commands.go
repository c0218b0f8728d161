package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/routes"
	"github.com/warrenmesh/warren/node/localapi"
	"github.com/warrenmesh/warren/node/proxy"
)

// command is one invocation's context and output.
type command struct {
	ctx         context.Context
	name        string
	socket      string
	in          io.Reader
	out, errOut io.Writer
	json        bool
	fs          *flag.FlagSet
}

// flags returns the command's flag set with --json and --socket.
func (c *command) flags() *flag.FlagSet {
	c.fs = flag.NewFlagSet("warren "+c.name, flag.ContinueOnError)
	c.fs.SetOutput(c.errOut)
	c.fs.BoolVar(&c.json, "json", false, "print JSON")
	c.fs.StringVar(&c.socket, "socket", c.socket, "warrend's local API socket")
	return c.fs
}

// parse parses flags anywhere among the arguments and checks how many
// positionals there are.
func (c *command) parse(args []string, n int, usage string) ([]string, error) {
	pos, err := cli.ParseInterspersed(c.fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, fmt.Errorf("usage: warren %s", usage)
	}
	return pos, nil
}

func (c *command) client() *localapi.Client { return localapi.NewClient(c.socket) }

func (c *command) up(args []string) error {
	fs := c.flags()
	var req localapi.UpRequest
	fs.StringVar(&req.Coordinator, "coordinator", "", "coordinator URL (first time; later the one joined before)")
	fs.StringVar(&req.ControlKey, "coordinator-key", "", "pin the coordinator's key (ckey:…) instead of fetching it")
	authKey := fs.String("auth-key", "", "pre-auth key from the admin (warren-coordinator keys create); visible to other local users in ps, so prefer --auth-key-file, or - to read it from stdin")
	authKeyFile := fs.String("auth-key-file", "", "read the pre-auth key from this file (- for stdin)")
	fs.StringVar(&req.Hostname, "hostname", "", "name for this node (default: the machine's hostname)")
	tags := fs.String("advertise-tags", "", "comma-separated tags for a server node, e.g. tag:db")
	advRoutes := fs.String("advertise-routes", "", "comma-separated subnet routes this node offers to forward to, e.g. 10.20.0.0/24,fd00:20::/64 (used once an admin or the policy's autoApprovers approves them; \"\" to stop)")
	advExit := fs.Bool("advertise-exit-node", false, "offer this node as an exit node for peers' internet traffic (once approved; =false to stop)")
	exitNode := fs.String("exit-node", "", "send all non-mesh traffic through this peer (a name or mesh address; an approved exit node, see warren exit-node list; --exit-node= to stop)")
	allowLAN := fs.Bool("exit-node-allow-lan-access", false, "while using an exit node, reach this host's directly connected networks directly (=false to stop)")
	fs.BoolVar(&req.Reauth, "reauth", false, "authenticate again under a new node key (keeps the address); expired nodes do this by themselves")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long to wait for the first netmap (and for you to sign in, without --auth-key)")
	if _, err := c.parse(args, 0, "up [--coordinator URL] [--auth-key-file FILE|- | sign in at the printed URL] [--hostname NAME] [--advertise-tags TAGS] [--advertise-routes CIDRS] [--advertise-exit-node] [--exit-node NAME|IP] [--exit-node-allow-lan-access] [--reauth]"); err != nil {
		return err
	}
	if err := advertiseFlags(fs, *advRoutes, *advExit, &req); err != nil {
		return err
	}
	exitNodeFlags(fs, *exitNode, *allowLAN, &req)
	key, err := readAuthKey(*authKey, *authKeyFile, c.in)
	if err != nil {
		return err
	}
	req.AuthKey = key
	if *tags != "" {
		for _, t := range strings.Split(*tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				req.Tags = append(req.Tags, t)
			}
		}
	}
	ctx, cancel := context.WithTimeout(c.ctx, *timeout)
	defer cancel()
	cl := c.client()
	defer cl.Close()
	st, err := cl.Up(ctx, req, func(msg string) { fmt.Fprintln(c.errOut, "warren:", msg) })
	if err != nil {
		return exitNodeRefused(err)
	}
	if c.json {
		return cli.PrintJSON(c.out, st)
	}
	fmt.Fprint(c.out, upMessage(st))
	return nil
}

// upMessage is what "warren up" prints once the node is in: who it is,
// and how apps reach peers in the data plane mode warrend runs.
func upMessage(st localapi.Status) string {
	var b strings.Builder
	if st.Self != nil {
		fmt.Fprintf(&b, "Up: %s (%s) in %s, %s.\n", st.Self.Name, addrs(st.Self.Addresses), st.Domain, plural(len(st.Peers), "peer"))
	} else {
		fmt.Fprintf(&b, "Up: %s, %s.\n", st.State, plural(len(st.Peers), "peer"))
	}
	example := "PEER"
	if len(st.Peers) > 0 {
		example = st.Peers[0].Name
	}
	if dev, ok := strings.CutPrefix(st.Mode, "tun:"); ok {
		fmt.Fprintf(&b, "Apps reach peers directly at their mesh addresses through %s", dev)
		if len(st.Peers) > 0 && len(st.Peers[0].Addresses) > 0 {
			fmt.Fprintf(&b, ", e.g. %s at %s", example, st.Peers[0].Addresses[0].Addr())
		}
		fmt.Fprintln(&b, " (warren status lists them).")
		names := example
		if st.Domain != "" {
			names += ", " + example + "." + st.Domain
		}
		switch st.MagicDNS {
		case "", "unconfigured": // an older warrend, or configuring the system failed
			if st.MagicDNS != "" {
				fmt.Fprintf(&b, "MagicDNS answers names (%s) at 100.100.100.100, but pointing the system's DNS at it failed (see warrend's log).\n", names)
			}
			if st.SOCKS5 != "" {
				fmt.Fprintf(&b, "Warren sets no system DNS: names (%s) resolve only through the proxy at %s (SOCKS5 and HTTP CONNECT).\n", names, st.SOCKS5)
			} else {
				fmt.Fprintln(&b, "Warren sets no system DNS: use the addresses (warren whois ADDR says whose an address is).")
			}
		case "off":
			fmt.Fprintf(&b, "MagicDNS answers names (%s) at 100.100.100.100; the system's DNS is left alone (warrend --dns off).\n", names)
		default:
			fmt.Fprintf(&b, "Names (%s) resolve through MagicDNS at 100.100.100.100, which the system's DNS (%s) uses for %s.\n", names, st.MagicDNS, st.Domain)
		}
		return b.String()
	}
	if st.SOCKS5 != "" {
		fmt.Fprintf(&b, "Apps reach the mesh through the proxy at %s (SOCKS5 and HTTP CONNECT), e.g.\n  curl --proxy socks5h://%s http://%s/\n", st.SOCKS5, st.SOCKS5, example)
	} else {
		fmt.Fprintf(&b, "No proxy runs (warrend --socks5 ADDR starts one): reach a peer's port with\n  warren forward LOCALPORT %s:PORT\n", example)
	}
	return b.String()
}

func (c *command) down(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "down"); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	st, err := cl.Down(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, st)
	}
	fmt.Fprintln(c.out, "Down: disconnected; this node keeps its identity (warren up reconnects).")
	return nil
}

func (c *command) logout(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "logout"); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	before, err := cl.Status(c.ctx) // what the advice names: the coordinator and this node
	if err != nil {
		return err
	}
	st, err := cl.Logout(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, st)
	}
	fmt.Fprint(c.out, logoutMessage(before))
	return nil
}

// logoutMessage is what "warren logout" prints, given the status before
// it. Logout expires the node on the coordinator (deletes it, if
// ephemeral) and forgets the coordinator, its pinned key and the node key;
// the machine key and hostname stay. So rejoining needs --coordinator and
// a key or sign-in, and the coordinator, which knows the machine key,
// gives back the same node: same ID, name and address.
func logoutMessage(before localapi.Status) string {
	if before.Coordinator == "" {
		return "Logged out: this node had not joined a coordinator; nothing else to forget.\n"
	}
	var b strings.Builder
	node := ""
	if before.Self != nil {
		node = fmt.Sprintf("%s, %s", before.Self.Name, addrs(before.Self.Addresses))
	}
	if node != "" && before.Connected {
		fmt.Fprintf(&b, "Logged out of %s: warrend asked the coordinator to expire this node (%s) and forgot the coordinator and the node key.\n", before.Coordinator, node)
	} else {
		// Not connected (down, or the coordinator unreachable): warrend
		// could not tell the coordinator.
		fmt.Fprintf(&b, "Logged out of %s on this machine only: warrend forgot the coordinator and the node key, but was not connected to the coordinator, so the node stays registered there until its key expires or an admin deletes it.\n", before.Coordinator)
	}
	fmt.Fprintf(&b, "To join again, name the coordinator and give a pre-auth key (or leave the key out to sign in):\n  warren up --coordinator %s --auth-key-file FILE\n", before.Coordinator)
	same := "the same node (same name and address)"
	if node != "" {
		same = "the same node (" + node + ")"
	}
	fmt.Fprintf(&b, "This machine keeps its machine key, so it comes back as %s, unless an admin deletes the node first; an ephemeral node is deleted (now, or soon after it goes offline) and comes back as a new one.\n", same)
	return b.String()
}

func (c *command) status(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "status"); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	st, err := cl.Status(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, st)
	}
	switch st.State {
	case localapi.StateStopped:
		if st.Coordinator == "" { // never joined, or logged out: up needs the URL
			fmt.Fprintln(c.out, "Stopped, and not joined to a coordinator: run warren up --coordinator URL --auth-key-file FILE (or without a key, to sign in).")
			return nil
		}
		fmt.Fprintf(c.out, "Stopped: run warren up to reconnect to %s.\n", st.Coordinator)
		return nil
	case localapi.StateError:
		fmt.Fprintf(c.out, "Error: %s\n", st.Error)
		return nil
	case localapi.StateStarting:
		fmt.Fprintf(c.out, "Starting: connecting to %s…\n", st.Coordinator)
		return nil
	case localapi.StateNeedsLogin:
		fmt.Fprintf(c.out, "Needs login: to finish joining %s, sign in at:\n  %s\n", st.Coordinator, st.AuthURL)
		return nil
	}
	if st.Self == nil { // a state this CLI does not know yet
		fmt.Fprintf(c.out, "%s: %s\n", st.State, st.Coordinator)
		return nil
	}
	conn := "connected"
	if !st.Connected {
		conn = "coordinator unreachable, using the last netmap"
	}
	fmt.Fprintf(c.out, "%s  %s  %s  %s (%s)  udp/%d  dropped %d\n", st.Self.Name, addrs(st.Self.Addresses), st.Mode, st.Coordinator, conn, st.ListenPort, st.Dropped)
	if st.SOCKS5 != "" {
		fmt.Fprintf(c.out, "proxy %s\n", st.SOCKS5)
	}
	fmt.Fprint(c.out, exitNodeLine(st))
	printPostureDenials(c.out, st.Posture)
	fmt.Fprintln(c.out)
	if len(st.Peers) == 0 {
		fmt.Fprintln(c.out, "No peers: nothing this node may reach or be reached from.")
		return printPostureAttrs(c.out, st.Posture, time.Now())
	}
	err = cli.PrintTable(c.out, "NAME\tADDRESS\tOWNER\tONLINE\tPATH\tHANDSHAKE\tRX\tTX", func(w io.Writer) {
		for _, p := range st.Peers {
			owner := p.User
			if len(p.Tags) > 0 {
				owner = strings.Join(p.Tags, ",")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, addrs(p.Addresses[:min(1, len(p.Addresses))]), dash(owner),
				yesNo(p.Online), dash(p.Path), ago(p.LastHandshake), byteSize(p.RxBytes), byteSize(p.TxBytes))
		}
	})
	if err != nil {
		return err
	}
	if err := printPeerRoutes(c.out, st.Peers); err != nil {
		return err
	}
	return printPostureAttrs(c.out, st.Posture, time.Now())
}

func (c *command) ping(args []string) error {
	fs := c.flags()
	count := fs.Int("c", 3, "number of probes")
	port := fs.Uint("tcp", 0, "also time TCP connects to this port")
	pos, err := c.parse(args, 1, "ping PEER [--tcp PORT] [-c N]")
	if err != nil {
		return err
	}
	if *port > 65535 {
		return fmt.Errorf("--tcp %d is not a port", *port)
	}
	cl := c.client()
	defer cl.Close()
	rep, err := cl.Ping(c.ctx, localapi.PingRequest{Peer: pos[0], Count: *count, TCPPort: uint16(*port)})
	if err != nil {
		return err
	}
	if c.json {
		if err := cli.PrintJSON(c.out, rep); err != nil {
			return err
		}
		return pingErr(rep, *port)
	}
	for _, r := range rep.Results {
		what := "pong"
		if r.Kind == "tcp" {
			what = "tcp connect to port " + strconv.Itoa(int(*port))
		}
		if r.Error != "" {
			fmt.Fprintf(c.out, "%s %s #%d: %s\n", rep.Peer, r.Kind, r.Seq, r.Error)
			continue
		}
		fmt.Fprintf(c.out, "%s from %s (%s) via %s in %s\n", what, rep.Peer, rep.Address, rep.Path, r.RTT.Round(10*time.Microsecond))
	}
	return pingErr(rep, *port)
}

// pingErr is ping's verdict, which its exit status carries: nil when every
// kind of probe asked for (pings, and TCP connects with --tcp) got at
// least one answer; otherwise an error naming the kind that got none.
func pingErr(rep localapi.PingReport, port uint) error {
	sent, answered := map[string]int{}, map[string]int{}
	for _, r := range rep.Results {
		sent[r.Kind]++
		if r.Error == "" {
			answered[r.Kind]++
		}
	}
	switch {
	case len(rep.Results) == 0:
		return fmt.Errorf("no probes sent to %s", rep.Peer)
	case sent["wireguard"] > 0 && answered["wireguard"] == 0:
		return fmt.Errorf("no answer from %s (%s): %d of %d pings lost", rep.Peer, rep.Address, sent["wireguard"], sent["wireguard"])
	case sent["tcp"] > 0 && answered["tcp"] == 0:
		return fmt.Errorf("no TCP connection to %s port %d: %d of %d connects failed", rep.Peer, port, sent["tcp"], sent["tcp"])
	}
	return nil
}

func (c *command) netcheck(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "netcheck"); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	rep, err := cl.Netcheck(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, rep)
	}
	fmt.Fprintf(c.out, "UDP port:        %d\n", rep.ListenPort)
	fmt.Fprintf(c.out, "Endpoints:       %s\n", dash(strings.Join(rep.Endpoints, ", ")))
	fmt.Fprintf(c.out, "NAT:             %s\n", rep.NAT)
	if rep.HomeRegion != 0 {
		fmt.Fprintf(c.out, "Home relay:      region %d\n", rep.HomeRegion)
	}
	if rep.NetworkError != "" {
		fmt.Fprintf(c.out, "Measurement:     %s\n", rep.NetworkError)
	}
	switch {
	case rep.Coordinator == "":
		fmt.Fprintln(c.out, "Coordinator:     none (run warren up)")
	case rep.CoordinatorError != "":
		fmt.Fprintf(c.out, "Coordinator:     %s unreachable: %s\n", rep.Coordinator, rep.CoordinatorError)
	default:
		match := "key matches the pinned key"
		if !rep.ControlKeyMatches {
			match = "KEY DIFFERS from the pinned key: a different coordinator answers at this URL"
		}
		fmt.Fprintf(c.out, "Coordinator:     %s in %s, %s\n", rep.Coordinator, rep.CoordinatorRTT.Round(10*time.Microsecond), match)
	}
	fmt.Fprintf(c.out, "Control channel: %s\n", map[bool]string{true: "open", false: "closed"}[rep.ControlChannelOpen])
	if rep.Network != nil {
		fmt.Fprintf(c.out, "\n%s", rep.Network)
	}
	return nil
}

func (c *command) forward(args []string) error {
	c.flags()
	pos, err := c.parse(args, 2, "forward LOCALPORT PEER:PORT")
	if err != nil {
		return err
	}
	port, err := strconv.ParseUint(pos[0], 10, 16)
	if err != nil {
		return fmt.Errorf("LOCALPORT %q is not a port", pos[0])
	}
	if _, _, err := net.SplitHostPort(pos[1]); err != nil {
		return fmt.Errorf("target %q must be PEER:PORT, e.g. db:5432", pos[1])
	}
	cl := c.client()
	defer cl.Close()
	// Fail early, before listening, when warrend is not there or the
	// target is not a node this node can reach.
	host, _, _ := net.SplitHostPort(pos[1])
	if _, err := cl.Resolve(c.ctx, host); err != nil {
		return fmt.Errorf("forward to %s: %w", pos[1], err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return err
	}
	if c.json {
		_ = cli.PrintJSON(c.out, map[string]string{"listen": ln.Addr().String(), "target": pos[1]})
	} else {
		fmt.Fprintf(c.out, "Forwarding %s -> %s through the mesh (Ctrl-C to stop)\n", ln.Addr(), pos[1])
	}
	log, _ := cli.NewLogger(c.errOut, "text", "info")
	return proxy.Forward(c.ctx, ln, pos[1], proxy.Config{
		Dial: func(ctx context.Context, _ string, addr netip.AddrPort) (net.Conn, error) {
			return cl.Dial(ctx, addr.String())
		},
		Resolve: cl.Resolve,
		Logger:  log,
	})
}

func addrs(ps []netip.Prefix) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Addr().String()
	}
	return strings.Join(out, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// advertiseFlags puts --advertise-routes and --advertise-exit-node into
// req when they were given (the node keeps what it advertised before
// otherwise). A bad route is a usage error (exit status 2), found before
// anything is sent.
func advertiseFlags(fs *flag.FlagSet, advRoutes string, advExit bool, req *localapi.UpRequest) error {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "advertise-routes":
			req.AdvertiseRoutes = &[]netip.Prefix{}
		case "advertise-exit-node":
			req.AdvertiseExitNode = &advExit
		}
	})
	if req.AdvertiseRoutes == nil {
		return nil
	}
	rs, err := routes.Parse(advRoutes)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("--advertise-routes: %w", err)}
	}
	if rs != nil { // an empty list stays empty, not null: it clears them
		*req.AdvertiseRoutes = rs
	}
	return nil
}
