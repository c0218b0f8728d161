package main

import (
	"fmt"
	"io"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
)

// The audit and flows commands: queries of the coordinator's logs.

func auditCmd(c *command, args []string) error {
	var q api.AuditQuery
	c.fs.StringVar(&q.Since, "since", "", "only events this recent (1h, 7d) or since this RFC 3339 time")
	c.fs.StringVar(&q.Until, "until", "", "only events this long ago or older (1h, 7d), or until this RFC 3339 time")
	c.fs.StringVar(&q.Actor, "actor", "", "only events by this actor, e.g. user:ann@example.com, node:12, system")
	c.fs.StringVar(&q.Action, "action", "", "only this action, e.g. node.register")
	c.fs.StringVar(&q.Target, "target", "", "only events acting on this, e.g. node:12, user:3")
	c.fs.StringVar(&q.Outcome, "outcome", "", "only this outcome: ok, denied or error")
	c.fs.IntVar(&q.Limit, "limit", 100, "at most this many events")
	if err := c.parse(args, 0, 0, "audit [--since D] [--until D] [--actor A] [--action A] [--target T] [--outcome O] [--limit N] [--json]"); err != nil {
		return err
	}
	events, err := c.c.QueryAudit(c.ctx, q)
	if err != nil {
		return err
	}
	return c.print(events, "TIME\tACTOR\tACTION\tTARGET\tOUTCOME\tREMOTE\tDETAIL", func(w io.Writer) {
		for _, e := range events {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Actor, e.Action,
				orDash(e.Target), e.Outcome, orDash(e.Remote), e.Detail)
		}
	})
}

func flowsCmd(c *command, args []string) error {
	var q api.FlowQuery
	var port uint
	c.fs.StringVar(&q.Since, "since", "", "only flows whose last packet is this recent (1h, 7d) or since this RFC 3339 time")
	c.fs.StringVar(&q.Until, "until", "", "only flows whose last packet is this long ago or older, or until this RFC 3339 time")
	c.fs.StringVar(&q.User, "user", "", "only flows from this user's devices (login, e.g. ann@example.com)")
	c.fs.StringVar(&q.Src, "src", "", "only flows from this node (name or ID)")
	c.fs.StringVar(&q.Dst, "dst", "", "only flows to this destination: tag:NAME, a node's name or ID, or an address")
	c.fs.UintVar(&port, "port", 0, "only flows to this destination port")
	c.fs.BoolVar(&q.Denied, "denied", false, "only denied flows")
	c.fs.IntVar(&q.Limit, "limit", 100, "at most this many flows")
	if err := c.parse(args, 0, 0, "flows [--since D] [--until D] [--user U] [--src NODE] [--dst tag:T|NODE|ADDR] [--port P] [--denied] [--limit N] [--json]"); err != nil {
		return err
	}
	if port > 65535 {
		return fmt.Errorf("--port %d is not a port", port)
	}
	q.Port = uint16(port)
	flows, err := c.c.ListFlows(c.ctx, q)
	if err != nil {
		return err
	}
	return c.print(flows, "LAST\tSRC\tFROM\tDST\tTO\tPROTO\tVERDICT\tRULE/REASON\tIN\tOUT", func(w io.Writer) {
		for _, f := range flows {
			why := f.Rule
			if f.Verdict == "deny" {
				why = f.Reason
			}
			in, out := fmt.Sprintf("%dp/%dB", f.PacketsIn, f.BytesIn), fmt.Sprintf("%dp/%dB", f.PacketsOut, f.BytesOut)
			if f.Count > 0 {
				in = fmt.Sprintf("%d denied", f.Count)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.End.Local().Format(time.DateTime), f.Src, owner(f.SrcUser, f.SrcTags),
				f.Dst, owner(f.DstUser, f.DstTags), protoName(f.Proto), f.Verdict, orDash(why), in, out)
		}
	})
}

// owner names who a flow's end belonged to: the user, else the tags.
func owner(user string, tags []string) string {
	if user != "" {
		return user
	}
	if len(tags) > 0 {
		return fmt.Sprint(tags)
	}
	return "-"
}

func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "icmpv6"
	}
	return fmt.Sprint(p)
}
