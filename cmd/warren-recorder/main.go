// Command warren-recorder stores SSH session recordings. Warren nodes
// whose ssh rules require recording stream each session to it as an
// asciicast (internal/recording's upload protocol), and it keeps them as
// files in one directory, listed by `warren-recorder list` and replayed
// with `asciinema play FILE`.
//
// It is meant to run on a node tagged for it (e.g. tag:recorder), on
// loopback behind `warrend --expose 80=127.0.0.1:8765`: the mesh's policy
// decides which nodes may reach it. It never serves recordings over HTTP
// unless told who may see them (--viewer with --trust-identity-headers),
// and never trusts identity headers unless told to.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/version"
)

const defaultDir = "/var/lib/warren-recorder"

const usage = `usage:
  warren-recorder serve [--listen 127.0.0.1:8765] [--dir DIR] [--max-bytes N] [--trust-identity-headers] [--viewer LOGIN]...
  warren-recorder list [--dir DIR] [--json]
  warren-recorder version`

func main() {
	cli.Main("warren-recorder", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return &cli.ExitError{Code: 2}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "list":
		return list(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "warren-recorder", version.String())
		return nil
	case "help", "-h", "--help", "-help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return &cli.ExitError{Code: 2, Err: fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

// parseFlags parses a subcommand's flags; a usage error exits 2.
func parseFlags(fs *flag.FlagSet, args []string) error {
	pos, err := cli.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return &cli.ExitError{Code: 2, Err: err}
	}
	if len(pos) > 0 {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf("unexpected argument %q\n%s", pos[0], usage)}
	}
	return nil
}
