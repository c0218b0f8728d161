// Command warren is the node's command-line tool: it joins the mesh, shows
// its state, pings peers and forwards local ports, all by talking to
// warrend over its local API socket.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/version"
	"github.com/warrenmesh/warren/node/localapi"
)

const usage = `warren: control this machine's Warren node (talks to warrend).

Usage:
  warren [--socket PATH] up [--coordinator URL] [--auth-key-file FILE|-] [--hostname NAME] [--advertise-tags tag:a,tag:b] [--coordinator-key ckey:…]
                                   join the mesh; the pre-auth key comes from FILE, or stdin with -
                                   (--auth-key KEY works too, but is visible to other local users in ps)
  warren down                      disconnect (keeps this node's identity)
  warren status                    this node, its peers, their paths
  warren ip [-4|-6] [PEER]         this node's mesh addresses (or PEER's)
  warren whois ADDR[:PORT]|PEER   who is behind a connection arriving on this node: a mesh address
                                   (with PORT, the rule letting it reach that port of this node), or
                                   the address a service sees for a connection warrend --expose made
                                   (127.0.0.1:PORT): user, groups, device, tags, postures
  warren ping PEER [--tcp PORT] [-c N]
                                   ping through the tunnel (and time TCP connects)
  warren netcheck                  endpoints, UDP port, coordinator reachability
  warren posture                   this device's posture attributes (node:os, node:diskEncrypted, …)
                                   as the node collects and reports them
  warren forward LOCALPORT PEER:PORT
                                   forward 127.0.0.1:LOCALPORT to PEER:PORT in the mesh
  warren nc PEER PORT              copy stdin/stdout to PEER:PORT in the mesh, e.g. for ssh:
                                   ssh -o ProxyCommand='warren nc %h %p' USER@PEER
  warren exit-node list            the exit nodes this node may use (warren up --exit-node NAME|IP
                                   [--exit-node-allow-lan-access]; --exit-node= to stop)
  warren access request DST --for DURATION [--reason TEXT]
                                   ask for just-in-time access to DST (as the policy's access
                                   rules write it, e.g. tag:prod-db:5432) for this device
  warren access list [--pending]   your requests, or (--pending) those you may approve
  warren access cancel ID          withdraw your request, or end your grant early
  warren access approve ID [--for DURATION] | deny ID --reason TEXT | revoke ID [--reason TEXT]
                                   decide on a request (approvers), end a grant (approvers)
  warren login --mfa               sign in again with MFA, for rules that need recent MFA
  warren logout                    disconnect and forget this node's registration
  warren version                   this program's version (also --version)

PEER is a node name (db), its full name (db.warren.internal) or a mesh
address. Every command takes --json for machine-readable output and
--socket (default ` + localapi.DefaultSocket + `, or $WARREN_SOCKET).

Exit status: 0 on success, 1 on any failure. warren access and warren
login --mfa exit 2 on a usage error and 3 when the coordinator refused
(not allowed, no access rule covers the destination, no such request). ping fails when a kind of
probe it sent got no answer at all (no pong; with --tcp, no connect);
whois exits 1 for an address this node knows no node of, 2 on a usage error; nc
fails when it cannot connect or the stream breaks, and exits 0 when the peer closed it.
`

func main() {
	cli.Main("warren", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	socket := os.Getenv("WARREN_SOCKET")
	if socket == "" {
		socket = localapi.DefaultSocket
	}
	// Global flags may precede the command.
	for len(args) > 0 {
		switch {
		case args[0] == "--socket" || args[0] == "-socket":
			if len(args) < 2 {
				return errors.New("--socket needs a path")
			}
			socket, args = args[1], args[2:]
			continue
		case strings.HasPrefix(args[0], "--socket=") || strings.HasPrefix(args[0], "-socket="):
			_, v, _ := strings.Cut(args[0], "=")
			socket, args = v, args[1:]
			continue
		}
		break
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		_, _ = io.WriteString(stdout, usage)
		return nil
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	c := &command{ctx: ctx, name: args[0], socket: socket, in: stdin, out: stdout, errOut: stderr}
	rest := args[1:]
	switch args[0] {
	case "up":
		return c.up(rest)
	case "down":
		return c.down(rest)
	case "status":
		return c.status(rest)
	case "ping":
		return c.ping(rest)
	case "netcheck":
		return c.netcheck(rest)
	case "posture":
		return c.posture(rest)
	case "forward":
		return c.forward(rest)
	case "nc":
		return c.nc(rest)
	case "logout":
		return c.logout(rest)
	case "ip":
		return c.ip(rest)
	case "whois":
		return c.whois(rest)
	case "exit-node":
		return c.exitNodeCmd(rest)
	case "access":
		return c.accessCmd(rest)
	case "login":
		return c.login(rest)
	case "version":
		return c.version(rest)
	}
	return fmt.Errorf("unknown command %q (see warren --help)", args[0])
}

// version prints this binary's version; it does not need warrend.
func (c *command) version(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "version [--json]"); err != nil {
		return err
	}
	info := version.Get()
	if c.json {
		return cli.PrintJSON(c.out, info)
	}
	fmt.Fprintf(c.out, "warren %s (%s, %s)\n", info.Version, info.Platform, info.GoVersion)
	return nil
}
