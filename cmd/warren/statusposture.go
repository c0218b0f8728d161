package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/node/localapi"
)

// printPostureDenials lists, near the top of warren status, each rule
// this device fails only because of its posture, one line each: "denied
// tag:db:5432: needs posture:managed: node:diskEncrypted is false (needs
// == true)". Nothing when there are none.
func printPostureDenials(out io.Writer, p *localapi.PostureStatus) {
	if p == nil {
		return
	}
	if len(p.Denials) > 0 {
		for _, d := range p.Denials {
			fmt.Fprintln(out, d.String())
		}
		fmt.Fprintln(out, "  (fix the device, or ask an admin; access follows within a second of the coordinator seeing the change)")
	}
	// Rules failing only on MFA freshness: a sign-in fixes them.
	for _, d := range p.MFA {
		fmt.Fprintln(out, d.String())
	}
}

// printPostureAttrs lists the device's posture attributes as the
// coordinator holds them: name, value, who reported or set it, and when
// (a stale report counts as absent; an expired attribute is gone).
// Nothing when there are none. warren posture shows the same after what
// the device collected itself.
func printPostureAttrs(out io.Writer, p *localapi.PostureStatus, now time.Time) error {
	if p == nil || len(p.Attrs) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	return cli.PrintTable(out, "ATTRIBUTE\tVALUE\tSOURCE\tREPORTED", func(w io.Writer) {
		for _, a := range p.Attrs {
			var when []string
			if !a.CollectedAt.IsZero() {
				when = append(when, now.Sub(a.CollectedAt).Round(time.Second).String()+" ago")
			}
			switch {
			case a.Stale:
				when = append(when, "stale: counts as absent")
			case !a.Expires.IsZero():
				when = append(when, "expires in "+a.Expires.Sub(now).Round(time.Second).String())
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", a.Name, a.Value, dash(a.Source), dash(strings.Join(when, ", ")))
		}
	})
}
