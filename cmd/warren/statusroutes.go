package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// printPeerRoutes lists, after the peer table of warren status, the
// subnet routes each peer serves and whether this node uses that peer
// for them ("primary") or keeps it on standby (another router carries
// the prefix here, or the router is offline).
func printPeerRoutes(out io.Writer, peers []localapi.PeerStatus) error {
	if !slices.ContainsFunc(peers, func(p localapi.PeerStatus) bool { return len(p.Routes) > 0 }) {
		return nil
	}
	fmt.Fprintln(out)
	return cli.PrintTable(out, "ROUTER\tROUTES", func(w io.Writer) {
		for _, p := range peers {
			if len(p.Routes) == 0 {
				continue
			}
			var rs []string
			for _, r := range p.Routes {
				rs = append(rs, routeRole(r, p))
			}
			fmt.Fprintf(w, "%s\t%s\n", p.Name, strings.Join(rs, ", "))
		}
	})
}

// routeRole is r as warren status shows it for router p.
func routeRole(r netip.Prefix, p localapi.PeerStatus) string {
	switch {
	case slices.Contains(p.PrimaryRoutes, r):
		return r.String() + " (primary)"
	case r.Bits() == 0:
		return r.String() + " (exit node)"
	}
	return r.String() + " (standby)"
}
