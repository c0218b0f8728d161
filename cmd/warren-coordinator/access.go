package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/wire"
)

// warren-coordinator access …: just-in-time access requests, for admins.
// Requests are filed from nodes (warren access request); here an admin
// lists, approves, denies and revokes them, and reads the history.

func init() {
	adminCommands["access list"] = accessListCmd
	adminCommands["access history"] = accessHistoryCmd
	adminCommands["access approve"] = func(c *command, args []string) error { return accessDecideCmd(c, args, "approve") }
	adminCommands["access deny"] = func(c *command, args []string) error { return accessDecideCmd(c, args, "deny") }
	adminCommands["access revoke"] = func(c *command, args []string) error { return accessDecideCmd(c, args, "revoke") }
}

const accessHeader = "ID\tSTATE\tUSER\tDEVICE\tDESTINATION\tDURATION\tCREATED\tEXPIRES\tDECIDED BY\tREASON\tNOTE"

// printAccess prints requests as JSON or a table.
func printAccess(c *command, rs []wire.AccessRequest) error {
	if rs == nil {
		rs = []wire.AccessRequest{}
	}
	return c.print(rs, accessHeader, func(w io.Writer) {
		for _, r := range rs {
			state := r.State
			if r.BreakGlass {
				state += " (break-glass)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, state, orDash(r.User), orDash(r.NodeName), r.Dst,
				shortDur(r.Duration), when(r.Created), when(r.Expires), orDash(r.Approver), orDash(oneLine(r.Reason)), orDash(oneLine(r.Note)))
		}
	})
}

func accessListCmd(c *command, args []string) error {
	pending := c.fs.Bool("pending", false, "only the pending requests")
	if err := c.parse(args, 0, 0, "access list [--pending] [--json]"); err != nil {
		return err
	}
	rs, err := c.c.ListAccess(c.ctx, *pending)
	if err != nil {
		return err
	}
	return printAccess(c, rs)
}

func accessHistoryCmd(c *command, args []string) error {
	var q api.AccessQuery
	c.fs.StringVar(&q.Since, "since", "", "requests filed since: a duration (1h, 7d) or an RFC 3339 time")
	c.fs.StringVar(&q.User, "user", "", "the requester's login")
	c.fs.StringVar(&q.State, "state", "", "pending, active, denied, cancelled, expired or revoked")
	c.fs.IntVar(&q.Limit, "limit", 0, "at most this many (default 1000)")
	if err := c.parse(args, 0, 0, "access history [--since D] [--user U] [--state S] [--limit N] [--json]"); err != nil {
		return err
	}
	rs, err := c.c.AccessHistory(c.ctx, q)
	if err != nil {
		return err
	}
	return printAccess(c, rs)
}

func accessDecideCmd(c *command, args []string, op string) error {
	var d api.AccessDecision
	usage := "access " + op + " ID"
	switch op {
	case "approve":
		c.fs.StringVar(&d.For, "for", "", "grant for this long instead (shorter than requested), e.g. 1h")
		usage += " [--for D]"
	case "deny":
		c.fs.StringVar(&d.Reason, "reason", "", "why (required; the requester sees it)")
		usage += " --reason R"
	case "revoke":
		c.fs.StringVar(&d.Reason, "reason", "", "why (the requester sees it)")
		usage += " [--reason R]"
	}
	if err := c.parse(args, 1, 1, usage+" [--json]"); err != nil {
		return err
	}
	if op == "deny" && strings.TrimSpace(d.Reason) == "" {
		return fmt.Errorf("usage: warren-coordinator %s: give the requester a reason", usage)
	}
	if d.For != "" {
		if v, err := time.ParseDuration(d.For); err != nil || v <= 0 {
			return fmt.Errorf("--for %q: want a duration such as 1h30m", d.For)
		}
	}
	r, err := c.c.DecideAccess(c.ctx, op, c.args[0], d)
	if err != nil {
		return err
	}
	return printAccess(c, []wire.AccessRequest{r})
}

// shortDur writes d without zero trailing units: 2h, 1h30m.
func shortDur(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// oneLine keeps a table cell on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
