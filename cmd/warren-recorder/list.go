package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/recording"
)

// list prints the recordings in a directory.
func list(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("warren-recorder list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", defaultDir, "the recordings directory")
	asJSON := fs.Bool("json", false, "print JSON: an array of {id, meta, size, complete, reason, modified}")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Open, never create: listing a mistyped directory must say so.
	if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("no recordings directory at %s (give --dir)", *dir)
	}
	d, err := recording.NewDir(*dir)
	if err != nil {
		return err
	}
	infos, err := d.List()
	if err != nil {
		return err
	}
	if *asJSON {
		if infos == nil {
			infos = []recording.Info{}
		}
		return cli.PrintJSON(stdout, infos)
	}
	if len(infos) == 0 {
		fmt.Fprintln(stdout, "no recordings in", *dir)
		return nil
	}
	return cli.PrintTable(stdout, "ID\tSTARTED\tUSER\tAS\tNODE\tFROM\tSIZE\tSTATE\tFILE", func(w io.Writer) {
		for _, in := range infos {
			state := "complete"
			if !in.Complete {
				state = "incomplete"
				if in.Reason != "" {
					state += " (" + orDash(in.Reason) + ")"
				}
			}
			started := "-"
			if !in.Meta.Started.IsZero() {
				started = in.Meta.Started.UTC().Format(time.RFC3339)
			}
			node := orDash(in.Meta.Node)
			if in.Meta.Uploader != "" {
				node += " [verified: " + in.Meta.Uploader + "]"
			}
			file, _ := d.CastPath(in.ID)
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", in.ID, started, orDash(in.Meta.User), orDash(in.Meta.LocalUser),
				node, orDash(in.Meta.Src), in.Size, state, file)
		}
	})
}

// orDash makes a field an uploader claimed safe for a table on a
// terminal: "-" when empty, quoted when it holds anything unprintable
// (escape sequences, tabs).
func orDash(s string) string {
	switch {
	case s == "":
		return "-"
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return strconv.Quote(s)
	}
	return s
}
