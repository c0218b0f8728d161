package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/wire"
	"github.com/warrenmesh/warren/node/localapi"
)

// exitRefused is the exit status of an access command the coordinator
// refused (forbidden, no access rule, not found, …); 1 is a failure to
// ask at all, 2 a usage error.
const exitRefused = 3

// accessWait bounds an access command, sign-in included.
const accessWait = 15 * time.Minute

const accessUsage = `access request DST --for DURATION [--reason TEXT] | list [--pending] | cancel ID | approve ID [--for DURATION] | deny ID --reason TEXT | revoke ID [--reason TEXT]`

// accessCmd runs warren access SUBCOMMAND.
func (c *command) accessCmd(args []string) error {
	if len(args) == 0 {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: warren " + accessUsage)}
	}
	sub, args := args[0], args[1:]
	c.name = "access " + sub
	fs := c.flags()
	call := localapi.AccessCall{Op: sub}
	var n int
	var usage string
	switch sub {
	case wire.AccessOpRequest:
		fs.DurationVar(&call.For, "for", 0, "how long the access is for (at most the access rule's maxDuration)")
		fs.StringVar(&call.Reason, "reason", "", "why (the rule may require one), e.g. a ticket number")
		n, usage = 1, "access request DST --for DURATION [--reason TEXT]"
	case wire.AccessOpList:
		fs.BoolVar(&call.Pending, "pending", false, "list the pending requests you may approve, not your own")
		n, usage = 0, "access list [--pending]"
	case wire.AccessOpCancel:
		n, usage = 1, "access cancel ID"
	case wire.AccessOpApprove:
		fs.DurationVar(&call.For, "for", 0, "grant for less than requested")
		n, usage = 1, "access approve ID [--for DURATION]"
	case wire.AccessOpDeny:
		fs.StringVar(&call.Reason, "reason", "", "why (shown to the requester)")
		n, usage = 1, "access deny ID --reason TEXT"
	case wire.AccessOpRevoke:
		fs.StringVar(&call.Reason, "reason", "", "why (shown to the requester)")
		n, usage = 1, "access revoke ID [--reason TEXT]"
	default:
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("unknown access command %q; usage: warren %s", sub, accessUsage)}
	}
	pos, err := c.parse(args, n, usage)
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	switch sub {
	case wire.AccessOpRequest:
		call.Dst = pos[0]
		if call.For <= 0 {
			return &cli.ExitError{Code: 2, Err: errors.New("access request needs --for DURATION, e.g. --for 2h")}
		}
	case wire.AccessOpDeny:
		call.Request = pos[0]
		if call.Reason == "" {
			return &cli.ExitError{Code: 2, Err: errors.New("access deny needs --reason TEXT")}
		}
	case wire.AccessOpList:
	default:
		call.Request = pos[0]
	}
	rep, err := c.access(call, "Your MFA is older than this rule allows: sign in at")
	if err != nil {
		return err
	}
	return c.printAccess(sub, rep)
}

// login runs warren login --mfa: a step-up sign-in that refreshes
// the MFA time of this node's user without filing a request.
func (c *command) login(args []string) error {
	fs := c.flags()
	mfa := fs.Bool("mfa", false, "sign in again with MFA to refresh it (for rules that need recent MFA)")
	if _, err := c.parse(args, 0, "login --mfa"); err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if !*mfa {
		return &cli.ExitError{Code: 2, Err: errors.New("usage: warren login --mfa (to join the mesh, use warren up)")}
	}
	rep, err := c.access(localapi.AccessCall{Op: wire.AccessOpStepUp}, "Sign in again with MFA at")
	if err != nil {
		return err
	}
	if c.json {
		if err := cli.PrintJSON(c.out, rep); err != nil {
			return err
		}
	} else if rep.Code == "" {
		fmt.Fprintln(c.out, "MFA refreshed: rules that need recent MFA let this device through within a second.")
	}
	return refusal(rep, c.json)
}

// access runs call, printing the step-up sign-in URL with prompt.
func (c *command) access(call localapi.AccessCall, prompt string) (localapi.AccessReply, error) {
	ctx, cancel := context.WithTimeout(c.ctx, accessWait)
	defer cancel()
	cl := c.client()
	defer cl.Close()
	return cl.Access(ctx, call, func(u string) {
		fmt.Fprintf(c.errOut, "%s %s\nwarren: waiting for the sign-in…\n", prompt, u)
	})
}

// printAccess prints the reply to sub and returns the exit status error
// of a refusal.
func (c *command) printAccess(sub string, rep localapi.AccessReply) error {
	if c.json {
		out := accessJSON{Code: rep.Code, Message: rep.Message, Requests: rep.Requests}
		if out.Requests == nil {
			out.Requests = []wire.AccessRequest{}
		}
		if err := cli.PrintJSON(c.out, out); err != nil {
			return err
		}
		return refusal(rep, true)
	}
	if rep.Code != "" {
		return refusal(rep, false)
	}
	if sub == wire.AccessOpList {
		return printAccessList(c.out, rep.Requests, time.Now())
	}
	for _, r := range rep.Requests {
		fmt.Fprintln(c.out, accessLine(r, time.Now()))
	}
	return nil
}

// accessJSON is what --json prints: the requests (always a list) and,
// for a refusal, its code and message.
type accessJSON struct {
	Code     string               `json:"code,omitempty"`
	Message  string               `json:"message,omitempty"`
	Requests []wire.AccessRequest `json:"requests"`
}

// refusal is the error of a refused call: exit status exitRefused,
// with the coordinator's message unless it was printed as JSON.
func refusal(rep localapi.AccessReply, printed bool) error {
	if rep.Code == "" {
		return nil
	}
	if rep.Code == wire.AccessFailed || rep.Code == wire.CodeAccessBusy {
		if printed {
			return &cli.ExitError{Code: 1}
		}
		return errors.New(rep.Message)
	}
	if printed {
		return &cli.ExitError{Code: exitRefused}
	}
	return &cli.ExitError{Code: exitRefused, Err: fmt.Errorf("refused (%s): %s", rep.Code, rep.Message)}
}

// accessLine is one request in a sentence: "ar-12 pending: tag:db:5432
// for 2h (INC-4211)".
func accessLine(r wire.AccessRequest, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %s for %s", r.ID, r.State, r.Dst, r.Duration)
	if r.Reason != "" {
		fmt.Fprintf(&b, " (%s)", r.Reason)
	}
	switch r.State {
	case wire.AccessPending:
		b.WriteString(", waiting for an approver (they see it with warren access list --pending)")
	case wire.AccessActive:
		fmt.Fprintf(&b, ", in force until %s (%s left)", r.Expires.Local().Format(time.DateTime), r.Expires.Sub(now).Round(time.Second))
		if r.BreakGlass {
			b.WriteString(", break-glass: self-approved and alerted")
		}
	}
	if r.Note != "" {
		fmt.Fprintf(&b, ": %s", r.Note)
	}
	return b.String()
}

// printAccessList prints requests as a table.
func printAccessList(out io.Writer, reqs []wire.AccessRequest, now time.Time) error {
	if len(reqs) == 0 {
		fmt.Fprintln(out, "No access requests.")
		return nil
	}
	return cli.PrintTable(out, "ID\tSTATE\tDESTINATION\tFOR\tUSER\tDEVICE\tENDS\tREASON", func(w io.Writer) {
		for _, r := range reqs {
			ends := "-"
			if r.State == wire.AccessActive && !r.Expires.IsZero() {
				ends = "in " + r.Expires.Sub(now).Round(time.Second).String()
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Dst, r.Duration, dash(r.User), dash(r.NodeName), ends, dash(r.Reason))
		}
	})
}
