package main

import (
	"fmt"
	"io"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// posture prints the device's own posture attributes (warren posture).
func (c *command) posture(args []string) error {
	c.flags()
	if _, err := c.parse(args, 0, "posture [--json]"); err != nil {
		return err
	}
	cl := c.client()
	defer cl.Close()
	rep, err := cl.Posture(c.ctx)
	if err != nil {
		return err
	}
	if c.json {
		return cli.PrintJSON(c.out, rep)
	}
	return printPosture(c.out, rep, time.Now())
}

// printPosture is warren posture's report: first each rule the device
// fails only because of posture (or of its user's stale MFA), then each attribute the device
// collected, its value and how long ago, whether the node reports them,
// and what the coordinator holds.
func printPosture(out io.Writer, rep localapi.PostureReport, now time.Time) error {
	if rep.Coordinator != nil && len(rep.Coordinator.Denials)+len(rep.Coordinator.MFA) > 0 {
		printPostureDenials(out, rep.Coordinator)
		fmt.Fprintln(out)
	}
	if err := cli.PrintTable(out, "ATTRIBUTE\tVALUE\tCOLLECTED", func(w io.Writer) {
		for _, a := range rep.Attrs {
			fmt.Fprintf(w, "%s\t%s\t%s\n", a.Name, a.Value, collectedAgo(now, a.CollectedAt))
		}
	}); err != nil {
		return err
	}
	switch {
	case rep.Reporting:
		fmt.Fprintf(out, "\nReported to the coordinator at start, on network changes and every %s.\n", rep.Interval)
	default:
		fmt.Fprintln(out, "\nCollected just now; not reported (the node is not up: warren up).")
	}
	fmt.Fprintln(out, "What this device cannot determine is not listed, and counts as absent in posture rules.")
	if rep.Coordinator != nil && len(rep.Coordinator.Attrs) > 0 {
		fmt.Fprint(out, "\nThe coordinator holds:\n")
		return printPostureAttrs(out, rep.Coordinator, now)
	}
	return nil
}

// collectedAgo says how long before now t was, in whole seconds.
func collectedAgo(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t).Round(time.Second)
	if d < time.Second {
		return "just now"
	}
	return d.String() + " ago"
}
