package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// exitNodeFlags puts --exit-node and --exit-node-allow-lan-access into
// req when they were given (the node keeps its choice otherwise;
// --exit-node= stops using one).
func exitNodeFlags(fs *flag.FlagSet, exit string, allowLAN bool, req *localapi.UpRequest) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "exit-node":
			e := strings.TrimSpace(exit)
			req.ExitNode = &e
		case "exit-node-allow-lan-access":
			req.ExitNodeAllowLANAccess = &allowLAN
		}
	})
}

// exitNodeRefused makes warrend's refusal of an exit-node choice a usage
// error (exit status 2): the name is wrong, not the machine.
func exitNodeRefused(err error) error {
	if err != nil && strings.Contains(err.Error(), "not an exit node this node may use") {
		return &cli.ExitError{Code: 2, Err: err}
	}
	return err
}

// exitNodeCmd is "warren exit-node list": the approved exit nodes among
// this node's peers (those the policy lets it reach), marking the one in
// use.
func (c *command) exitNodeCmd(args []string) error {
	c.flags()
	pos, err := c.parse(args, 1, "exit-node list [--json]")
	if err != nil {
		return err
	}
	if pos[0] != "list" {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("unknown exit-node command %q (usage: warren exit-node list [--json])", pos[0])}
	}
	cl := c.client()
	defer cl.Close()
	st, err := cl.Status(c.ctx)
	if err != nil {
		return err
	}
	type exitNode struct {
		localapi.PeerStatus
		InUse bool `json:"inUse"`
	}
	list := []exitNode{}
	for _, p := range st.Peers {
		if p.ExitNodeOption {
			list = append(list, exitNode{p, p.Name == st.ExitNode})
		}
	}
	if c.json {
		return cli.PrintJSON(c.out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.out, "No exit nodes: no peer this node may reach offers itself as one with an admin's or the policy's approval.")
		return nil
	}
	return cli.PrintTable(c.out, "NAME\tADDRESS\tOWNER\tONLINE\tIN USE", func(w io.Writer) {
		for _, p := range list {
			owner := p.User
			if len(p.Tags) > 0 {
				owner = strings.Join(p.Tags, ",")
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Name, addrs(p.Addresses[:min(1, len(p.Addresses))]), dash(owner), yesNo(p.Online), yesNo(p.InUse))
		}
	})
}

// exitNodeLine is warren status's line about the exit node; "" when the
// node uses none.
func exitNodeLine(st localapi.Status) string {
	lan := ""
	if st.ExitNodeAllowLANAccess {
		lan = " (the LAN stays direct)"
	}
	switch {
	case st.ExitNode != "":
		return "exit node " + st.ExitNode + lan + "\n"
	case st.ExitNodeWanted != "":
		return "exit node " + st.ExitNodeWanted + " is not an approved exit node in the netmap: non-mesh traffic goes nowhere (warren up --exit-node= stops using one)\n"
	}
	return ""
}
