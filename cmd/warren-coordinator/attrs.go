package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/warrenmesh/warren/coordinator/api"
)

// nodeAttrsCmd is "nodes attrs ID": one node's posture attributes.
func nodeAttrsCmd(c *command, args []string) error {
	if err := c.parse(args, 1, 1, "nodes attrs ID [--json]"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	na, err := c.c.NodeAttrs(c.ctx, id)
	if err != nil {
		return err
	}
	return printAttrs(c, na, []api.NodeAttrs{na})
}

// listAttrsCmd is "attrs list": every node's attributes.
func listAttrsCmd(c *command, args []string) error {
	if err := c.parse(args, 0, 0, "attrs list [--json]"); err != nil {
		return err
	}
	all, err := c.c.AllAttrs(c.ctx)
	if err != nil {
		return err
	}
	return printAttrs(c, all, all)
}

// setAttrsCmd is "attrs set ID custom:NAME=VALUE... [--expires D|TIME]".
func setAttrsCmd(c *command, args []string) error {
	expires := c.fs.String("expires", "", "when the attributes stop counting: a duration (24h) or a time (2026-12-31T00:00:00Z); default never")
	if err := c.parse(args, 2, -1, "attrs set ID custom:NAME=VALUE... [--expires 24h] [--json]"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	attrs := make(map[string]string, len(c.args)-1)
	for _, kv := range c.args[1:] {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q is not NAME=VALUE: write e.g. custom:mdmCompliant=true", kv)
		}
		if _, dup := attrs[name]; dup {
			return fmt.Errorf("%s is given twice", name)
		}
		attrs[name] = value
	}
	na, err := c.c.SetAttrs(c.ctx, id, api.SetAttrsRequest{Attrs: attrs, Expires: *expires})
	if err != nil {
		return err
	}
	return printAttrs(c, na, []api.NodeAttrs{na})
}

// unsetAttrsCmd is "attrs unset ID custom:NAME...".
func unsetAttrsCmd(c *command, args []string) error {
	if err := c.parse(args, 2, -1, "attrs unset ID custom:NAME... [--json]"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	na, err := c.c.UnsetAttrs(c.ctx, id, c.args[1:])
	if err != nil {
		return err
	}
	return printAttrs(c, na, []api.NodeAttrs{na})
}

// printAttrs prints v as JSON with --json, else a table: one line per
// attribute, with its source, times and whether it counts.
func printAttrs(c *command, v any, nodes []api.NodeAttrs) error {
	return c.print(v, "ID\tNODE\tATTRIBUTE\tVALUE\tSOURCE\tREPORTED\tEXPIRES\tCOUNTS", func(w io.Writer) {
		for _, n := range nodes {
			for _, a := range n.Attrs {
				counts := "yes"
				switch {
				case a.Stale:
					counts = "no (stale)"
				case a.Expired:
					counts = "no (expired)"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, n.Name, a.Name, orDash(a.Value), a.Source, when(a.ReportedAt), when(a.Expires), counts)
			}
			if len(n.Attrs) == 0 {
				fmt.Fprintf(w, "%d\t%s\t-\t-\t-\t-\t-\t-\n", n.ID, n.Name)
			}
		}
	})
}
