package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/routes"
)

// nodeRoutesCmd is "nodes routes ID": one node's advertised, approved and
// enabled routes.
func nodeRoutesCmd(c *command, args []string) error {
	if err := c.parse(args, 1, 1, "nodes routes ID [--json]"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	nr, err := c.c.NodeRoutes(c.ctx, id)
	if err != nil {
		return err
	}
	return printRoutes(c, nr, []api.NodeRoutes{nr})
}

// listRoutesCmd is "routes list": every node that advertises routes.
func listRoutesCmd(c *command, args []string) error {
	if err := c.parse(args, 0, 0, "routes list [--json]"); err != nil {
		return err
	}
	all, err := c.c.ListRoutes(c.ctx)
	if err != nil {
		return err
	}
	return printRoutes(c, all, all)
}

// changeRoutesCmd is "routes approve|disable ID PREFIX...".
func changeRoutesCmd(c *command, args []string, verb string) error {
	if err := c.parse(args, 2, -1, verb+" ID PREFIX...  (0.0.0.0/0 or ::/0: the exit node)"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	ps := make([]netip.Prefix, 0, len(c.args)-1)
	for _, s := range c.args[1:] {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("%q is not a route: write a prefix like 10.20.0.0/24 (see: warren-coordinator nodes routes %d)", s, id)
		}
		ps = append(ps, p)
	}
	change := c.c.ApproveRoutes
	if verb == "disable" {
		change = c.c.DisableRoutes
	}
	nr, err := change(c.ctx, id, ps)
	if err != nil {
		return err
	}
	return printRoutes(c, nr, []api.NodeRoutes{nr})
}

// printRoutes prints v as JSON with --json, else a table of nodes: one
// line per route, with whether it is approved and in force.
func printRoutes(c *command, v any, nodes []api.NodeRoutes) error {
	return c.print(v, "ID\tNODE\tROUTE\tADVERTISED\tAPPROVED\tIN FORCE", func(w io.Writer) {
		for _, n := range nodes {
			all := append(append([]netip.Prefix(nil), n.Advertised...), n.Approved...)
			routes.Sort(all)
			var last netip.Prefix
			for i, p := range all {
				if i > 0 && p == last {
					continue
				}
				last = p
				route := p.String()
				if routes.IsExit(p) {
					route += " (exit node)"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Name, route,
					yesNo(slices.Contains(n.Advertised, p)), yesNo(slices.Contains(n.Approved, p)), yesNo(slices.Contains(n.Enabled, p)))
			}
			if len(all) == 0 {
				fmt.Fprintf(w, "%d\t%s\t-\t-\t-\t-\n", n.ID, n.Name)
			}
		}
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
