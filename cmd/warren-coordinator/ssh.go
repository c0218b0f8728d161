package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/wire"
)

// warren-coordinator ssh …: the SSH sessions nodes reported (who opened
// which session to which node as which local user, when, for how long)
// and the recordings the coordinator holds.

func init() {
	adminCommands["ssh sessions"] = sshSessionsCmd
	adminCommands["ssh list"] = sshSessionsCmd
	adminCommands["ssh recording"] = sshRecordingCmd
}

// exitRecordedElsewhere is ssh recording's exit status for a session a
// recorder node holds: the cast is not here, and the message says where.
const exitRecordedElsewhere = 3

const sshHeader = "SESSION\tUSER\tFROM\tTO\tAS\tSTARTED\tDURATION\tEXIT\tRULE\tCOMMAND\tRECORDING"

func sshSessionsCmd(c *command, args []string) error {
	var q api.SSHQuery
	c.fs.StringVar(&q.User, "user", "", "the source user's login")
	c.fs.StringVar(&q.Node, "node", "", "a node (name or ID), as destination or source")
	c.fs.StringVar(&q.Since, "since", "", "sessions started since: a duration (1h, 7d) or an RFC 3339 time")
	c.fs.IntVar(&q.Limit, "limit", 0, "at most this many (default 1000)")
	if err := c.parse(args, 0, 0, "[--user U] [--node N] [--since D] [--limit N] [--json]"); err != nil {
		return err
	}
	ss, err := c.c.ListSSHSessions(c.ctx, q)
	if err != nil {
		return err
	}
	return c.print(ss, sshHeader, func(w io.Writer) {
		for _, s := range ss {
			dur, exit := "open", "-"
			if !s.Ended.IsZero() {
				dur = shortDur(time.Duration(s.Duration * float64(time.Second)).Round(time.Second))
				if s.ExitCode >= 0 {
					exit = strconv.Itoa(s.ExitCode)
				}
				if s.Reason != "" {
					exit += " (" + oneLine(s.Reason) + ")"
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, orDash(s.User), orDash(s.SrcName), orDash(s.NodeName),
				s.LocalUser, when(s.Started), dur, exit, orDash(s.Rule), orDash(oneLine(s.Command)), recordingText(s))
		}
	})
}

// recordingText says where a session's recording is.
func recordingText(s api.SSHSession) string {
	switch {
	case s.Unrecorded:
		return "NOT RECORDED (no recorder took it)"
	case s.Recorder == "":
		return "-"
	case s.Recorder == wire.RecordToCoordinator:
		return s.Recording
	}
	return s.Recorder + ": " + orDash(s.Recording)
}

func sshRecordingCmd(c *command, args []string) error {
	if err := c.parse(args, 1, 1, "SESSION   (writes the asciinema cast to stdout)"); err != nil {
		return err
	}
	err := c.c.SSHRecording(c.ctx, c.args[0], c.out)
	if errors.Is(err, api.ErrRecordedElsewhere) {
		return &cli.ExitError{Code: exitRecordedElsewhere, Err: err}
	}
	return err
}
