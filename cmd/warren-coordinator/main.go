// Command warren-coordinator runs Warren's coordinator (serve) and
// administers a running one (users, nodes, keys, apikeys, audit, policy,
// access, ssh)
// through its admin API: the root-only unix socket on the coordinator host,
// or HTTPS with an API key from anywhere.
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/version"
)

const usage = `warren-coordinator: the Warren control server and its admin tool.

Usage:
  warren-coordinator serve [flags]          run the coordinator
  warren-coordinator version                print the version (also --version)
  warren-coordinator key [--state-dir DIR]  print the coordinator's public key
  warren-coordinator secrets rotate [--state-dir DIR] [--store URL] [--keep-old]
                                            seal the stored secrets under a new key (coordinator stopped)
  warren-coordinator migrate --from URL --to URL [--json]
                                            copy every table into a fresh store, verified (e.g. SQLite to PostgreSQL)
  warren-coordinator backup  [--store URL] --to FILE [--json]    online backup of a SQLite store
  warren-coordinator restore --from FILE [--store URL] [--force] [--json]
                                            write a backup into a stopped coordinator's SQLite store
  warren-coordinator users   list | create NAME [--admin] [--email E] [--group G]... | passwd USER | totp USER
                             | set-role USER admin|member | disable USER | enable USER | delete USER
  warren-coordinator nodes   list | approve ID | expire ID | key-lifetime ID DURATION|never|default | tag ID TAG...
                             | rename ID NAME | routes ID | attrs ID | delete ID
  warren-coordinator routes  list | approve ID PREFIX... | disable ID PREFIX...
                                            subnet and exit-node routes (0.0.0.0/0 or ::/0: the exit node)
  warren-coordinator attrs   list | set ID custom:NAME=VALUE... [--expires D|TIME] | unset ID custom:NAME...
                                            device posture attributes (node: ones come from the node itself)
  warren-coordinator keys    list | create --user USER [--reusable] [--ephemeral] [--tag T]... [--ttl D] | revoke ID | expire ID
  warren-coordinator apikeys list | create [--user USER] [--ttl D] [--role integration --name NAME]
  warren-coordinator audit   [--since D] [--until D] [--actor A] [--action A] [--target T] [--outcome O] [--limit N]
  warren-coordinator flows   [--since D] [--until D] [--user U] [--src NODE] [--dst tag:T|NODE|ADDR] [--port P]
                             [--denied] [--limit N]     flow logs, newest first (D: 1h, 7d or an RFC 3339 time)
  warren-coordinator access  list [--pending] | approve ID [--for D] | deny ID --reason R | revoke ID [--reason R]
                             | history [--since D] [--user U] [--state S] [--limit N]
                                            just-in-time access requests (filed from nodes: warren access request)
  warren-coordinator ssh     sessions [--user U] [--node N] [--since D] [--limit N] | recording SESSION
                                            SSH sessions by mesh identity; recording writes the cast to stdout
                                            (exit status 3 when a recorder node holds it: the message says where)
  warren-coordinator policy  check FILE... | test FILE... | show | history [--diff] | reload | apply FILE
                             | explain SRC DST:PORT [--file F] [--proto P] [--at T] [--posture K=V]... [--mfa-age D]
                             | compile --file POLICY --nodes NODES.json [--at T] | compile --diff OLD NEW --nodes NODES.json

Admin commands talk to a running coordinator: by default over its unix
socket (<state-dir>/admin.sock, root only; --state-dir or WARREN_STATE_DIR,
default /var/lib/warren-coordinator); with --server URL and an API key
(--api-key or WARREN_API_KEY) over HTTPS, trusting the system's CAs or those
in --ca-file (WARREN_CA_FILE). Every listing takes --json.
USER is a user's name or numeric ID. policy check and test work offline on
files (exit status 1 if any is invalid), for CI; explain does too with
--file, and compile prints each node's packet filter and peers for an
inventory of nodes (exit status 1 for a rejected policy, 2 for bad input;
formats in ops/policy/README.md). SRC and DST are node names, user logins, tags, hosts or addresses.
policy explain exits 0 for ALLOWED, 1 for DENIED, 2 when it has no answer.
The database is SQLite at <state-dir>/warren.db unless --store URL (or
WARREN_STORE) names another: postgres://user@host/db for PostgreSQL.
migrate, backup and restore exit 0 only when done and checked, 2 for bad
usage; for PostgreSQL, backup and restore print the pg_dump or pg_restore
command to run instead and exit 1.
`

func main() {
	cli.Main("warren-coordinator", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-version":
		if len(rest) > 0 {
			return fmt.Errorf("unexpected argument %q (see warren-coordinator --help)", rest[0])
		}
		fmt.Fprintln(stdout, "warren-coordinator", version.String())
		return nil
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "key":
		return printKey(rest, stdout, stderr)
	case "secrets":
		return secretsCmd(ctx, rest, stdout, stderr)
	case "migrate":
		return migrateCmd(ctx, rest, stdout, stderr)
	case "backup":
		return backupCmd(ctx, rest, stdout, stderr)
	case "restore":
		return restoreCmd(ctx, rest, stdout, stderr)
	case "users", "nodes", "routes", "attrs", "keys", "apikeys", "audit", "flows", "policy", "access", "ssh":
		return admin(ctx, cmd, rest, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (see warren-coordinator --help)", cmd)
}
