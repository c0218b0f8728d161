// Command warren-loadtest measures a coordinator under many real control
// connections: it opens N of them from one process (websocket and Noise,
// registration with a pre-auth key, streamed netmaps applied by the node's
// own control client; no data plane), then makes one change (one more node
// joins) and times its arrival at every node. It reports the time for all
// N to register and get their maps, the change's latency (p50, p99, max),
// bytes per map, and the coordinator's RSS and CPU seconds when given its
// process id or its metrics URL.
//
// Each simulated node has fresh machine, node and disco keys; the tool
// never writes them anywhere, and it never prints the pre-auth key. Point
// it only at a coordinator you run: every node it registers stays (use an
// ephemeral pre-auth key to have the coordinator delete them afterwards).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/warrenmesh/warren/internal/cli"
)

const usage = `usage: warren-loadtest --url URL --auth-key KEY [flags]

Opens --nodes real control connections to the coordinator (or a load
balancer in front of replicas), each a node registering with the pre-auth
key, waits until every one has its netmap and has applied every update
(--settle), then has one more node join and
times how long until every node's netmap shows it. Progress goes to stderr;
the report to stdout (--json for JSON). Exit status 0: every node mapped and
saw the change; 1: not all did (the report says how many); 2: bad usage.

A coordinator on this machine: run it with --max-conns-per-ip 0 (or give
--sources), and --coordinator-pid for its RSS and CPU seconds (or --metrics
with its --metrics-listen URL). Make the key with
  warren-coordinator keys create --user USER --reusable --ephemeral

`

func main() {
	cli.Main("warren-loadtest", func(ctx context.Context) error {
		return runMain(ctx, os.Args[1:], os.Stdout, os.Stderr, term.IsTerminal(int(os.Stderr.Fd())))
	})
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer, terminal bool) error {
	fs := flag.NewFlagSet("warren-loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	url := fs.String("url", "", "the coordinator's (or load balancer's) base URL, e.g. http://127.0.0.1:8080")
	authKey := fs.String("auth-key", os.Getenv("WARREN_AUTH_KEY"), "reusable pre-auth key (default $WARREN_AUTH_KEY)")
	controlKey := fs.String("control-key", "", "the coordinator's public key (ckey:...); default: fetched from URL/key")
	nodeKeysFile := fs.String("node-auth-keys", "", "file of pre-auth keys, one a line: node i registers with key i modulo their number (keys of several users or tags); --auth-key is then the probe's")
	nodes := fs.Int("nodes", 1000, "control connections to open")
	concurrency := fs.Int("concurrency", 64, "most nodes registering at once")
	sources := fs.Int("sources", 1, "spread connections over this many loopback source addresses 127.0.0.1... (for a coordinator on loopback with a per-address cap)")
	rampTimeout := fs.Duration("ramp-timeout", 10*time.Minute, "bound on the whole ramp-up")
	changeTimeout := fs.Duration("change-timeout", time.Minute, "bound on the wait for the change to reach every node")
	settle := fs.Duration("settle", 2*time.Second, "before the change, wait until no node got a netmap for this long")
	pid := fs.Int("coordinator-pid", 0, "process id of a coordinator on this machine: RSS and CPU from /proc")
	metricsURL := fs.String("metrics", "", "the coordinator's Prometheus URL (e.g. http://127.0.0.1:9101/metrics): RSS and CPU from it")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	logLevel := fs.String("log-level", "error", "log level of the simulated nodes' clients (debug, info, warn, error)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &cli.ExitError{Code: 2, Err: err}
	}
	usageErr := func(format string, a ...any) error {
		return &cli.ExitError{Code: 2, Err: fmt.Errorf(format+" (see warren-loadtest --help)", a...)}
	}
	switch {
	case fs.NArg() > 0:
		return usageErr("unexpected argument %q", fs.Arg(0))
	case *url == "":
		return usageErr("--url is required")
	case *authKey == "":
		return usageErr("--auth-key (or WARREN_AUTH_KEY) is required")
	case *nodes <= 0 || *concurrency <= 0 || *sources <= 0 || *sources > 254*254:
		return usageErr("--nodes and --concurrency must be positive, --sources between 1 and 64516")
	case *pid != 0 && *metricsURL != "":
		return usageErr("give --coordinator-pid or --metrics, not both")
	}
	cfg := Config{URL: *url, AuthKey: *authKey, Nodes: *nodes, Concurrency: *concurrency, Sources: *sources,
		RampTimeout: *rampTimeout, ChangeTimeout: *changeTimeout, Settle: *settle}
	if *nodeKeysFile != "" {
		b, err := os.ReadFile(*nodeKeysFile)
		if err != nil {
			return usageErr("--node-auth-keys: %v", err)
		}
		cfg.NodeAuthKeys = strings.Fields(string(b))
		if len(cfg.NodeAuthKeys) == 0 {
			return usageErr("--node-auth-keys: %s holds no keys", *nodeKeysFile)
		}
	}
	if *controlKey != "" {
		if err := cfg.ControlKey.UnmarshalText([]byte(*controlKey)); err != nil {
			return usageErr("--control-key: %v", err)
		}
	}
	switch {
	case *pid != 0:
		cfg.Stats = procStats{pid: *pid}
	case *metricsURL != "":
		cfg.Stats = metricsStats{url: *metricsURL, client: &http.Client{Timeout: 10 * time.Second}}
	}
	log, err := cli.NewLogger(stderr, "text", *logLevel)
	if err != nil {
		return usageErr("%v", err)
	}
	cfg.Logger = log
	limit, err := raiseFileLimit()
	if err != nil {
		fmt.Fprintf(stderr, "warren-loadtest: raise the open-file limit: %v\n", err)
	}
	// Each node holds one socket; the coordinator on this machine as many.
	if limit != 0 && uint64(*nodes)+64 > limit {
		fmt.Fprintf(stderr, "warren-loadtest: warning: the open-file limit is %d, below --nodes %d plus a reserve; raise it (ulimit -Hn)\n", limit, *nodes)
	}
	cfg.Progress = progressPrinter(stderr, terminal)
	if !terminal {
		cfg.Tick = 5 * time.Second
	}
	rep, err := run(ctx, cfg)
	if err != nil {
		return err
	}
	if *jsonOut {
		if err := cli.PrintJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printHuman(stdout, rep)
	}
	if !rep.OK {
		return &cli.ExitError{Code: 1}
	}
	return nil
}
