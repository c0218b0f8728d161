package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/cli"
)

// adminFlags are shared by every admin command.
type adminFlags struct {
	stateDir, socket, server, apiKey, caFile string
	json                                     bool
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.stateDir, "state-dir", stateDirDefault(), "coordinator state directory, to find admin.sock (default $WARREN_STATE_DIR, else "+defaultStateDir+")")
	fs.StringVar(&f.socket, "socket", "", "admin socket path (default <state-dir>/admin.sock)")
	fs.StringVar(&f.server, "server", "", "remote admin API URL (https://…); needs an API key")
	fs.StringVar(&f.apiKey, "api-key", "", "API key for --server (default $WARREN_API_KEY)")
	fs.StringVar(&f.caFile, "ca-file", os.Getenv("WARREN_CA_FILE"), "PEM file of the CA certificates to trust for --server, e.g. a private CA (default $WARREN_CA_FILE, else the system's)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

// stateDirDefault is the coordinator state directory when --state-dir is
// not given: $WARREN_STATE_DIR, else defaultStateDir.
func stateDirDefault() string {
	return cmp.Or(os.Getenv("WARREN_STATE_DIR"), defaultStateDir)
}

func (f *adminFlags) client() (*api.Client, error) {
	if f.server != "" {
		k := f.apiKey
		if k == "" {
			k = os.Getenv("WARREN_API_KEY")
		}
		if k == "" {
			return nil, errors.New("--server needs an API key: --api-key or WARREN_API_KEY (create one with: warren-coordinator apikeys create)")
		}
		hc, err := httpClient(f.caFile)
		if err != nil {
			return nil, err
		}
		return api.NewRemoteClient(f.server, k, hc), nil
	}
	// A CA file set in the environment for remote use is no error here; a
	// --ca-file flag without --server is.
	if f.caFile != "" && os.Getenv("WARREN_CA_FILE") != f.caFile {
		return nil, errors.New("--ca-file is for remote administration: add --server https://…")
	}
	return api.NewLocalClient(f.socketPath()), nil
}

func (f *adminFlags) socketPath() string {
	if f.socket != "" {
		return f.socket
	}
	return filepath.Join(f.stateDir, "admin.sock")
}

// httpClient returns the HTTP client for --server: nil (the default
// client, with the system's roots) without a CA file, else one that trusts
// only the certificates in caFile.
func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", caFile)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// hint adds to err what to pass when the coordinator could not be reached:
// where its admin socket is, or which CA signs its certificate.
func (f *adminFlags) hint(err error) error {
	if err == nil {
		return nil
	}
	if f.server != "" {
		var unknown x509.UnknownAuthorityError
		if errors.As(err, &unknown) {
			return fmt.Errorf("%w\n(if the coordinator's certificate comes from a private CA, pass --ca-file CA.pem or set WARREN_CA_FILE)", err)
		}
		return err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w\n(no coordinator is serving at %s: pass --state-dir DIR or set WARREN_STATE_DIR to the directory of warren-coordinator serve --state-dir, "+
			"or administer a remote coordinator with --server https://HOST:PORT and an API key)", err, f.socketPath())
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w\n(the admin socket is root only: run as root, or use --server with an API key)", err)
	}
	return err
}

// command is one admin subcommand's parsed input.
type command struct {
	ctx  context.Context
	af   adminFlags
	fs   *flag.FlagSet
	args []string
	out  io.Writer
	c    *api.Client
}

func admin(ctx context.Context, group string, args []string, stdout, stderr io.Writer) error {
	verb := "list"
	if group != "audit" && group != "flows" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	cmd := &command{ctx: ctx, out: stdout, fs: flag.NewFlagSet(group+" "+verb, flag.ContinueOnError)}
	cmd.fs.SetOutput(stderr)
	cmd.af.register(cmd.fs)
	handler, ok := adminCommands[group+" "+verb]
	switch group {
	case "audit":
		handler, ok = auditCmd, true
	case "flows":
		handler, ok = flowsCmd, true
	}
	if !ok {
		return fmt.Errorf("unknown command %q (see warren-coordinator --help)", group+" "+verb)
	}
	return cmd.af.hint(handler(cmd, args))
}

// parse finishes flag parsing, checks the positional count and connects.
func (c *command) parse(args []string, minArgs, maxArgs int, usage string) error {
	pos, err := cli.ParseInterspersed(c.fs, args)
	if err != nil {
		return err
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		return fmt.Errorf("usage: warren-coordinator %s %s", c.fs.Name(), usage)
	}
	c.args = pos
	c.c, err = c.af.client()
	return err
}

func (c *command) id(i int) (int64, error) {
	v, err := strconv.ParseInt(c.args[i], 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("%q is not an ID (a positive number; see the list command)", c.args[i])
	}
	return v, nil
}

// userID resolves a user given by name or numeric ID.
func (c *command) userID(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 {
		return v, nil
	}
	users, err := c.c.ListUsers(c.ctx)
	if err != nil {
		return 0, err
	}
	for _, u := range users {
		if u.Name == s || u.Email == s {
			return u.ID, nil
		}
	}
	return 0, fmt.Errorf("no user %q (see: warren-coordinator users list)", s)
}

// print writes v as JSON with --json, else as a table of rows.
func (c *command) print(v any, header string, rows func(w io.Writer)) error {
	if c.af.json {
		return cli.PrintJSON(c.out, v)
	}
	return cli.PrintTable(c.out, header, rows)
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// signIn says how a user can sign in interactively.
func signIn(u api.User) string {
	var ways []string
	if u.Issuer != "" {
		ways = append(ways, "sso")
	}
	if u.Password {
		ways = append(ways, "password")
	}
	if u.TOTP {
		ways = append(ways, "totp")
	}
	return orDash(strings.Join(ways, "+"))
}

// userGroups shows u's groups for users list: the policy's groups it is
// in, each with where that comes from, then those of its own groups the
// policy does not declare (no rule can name them).
func userGroups(u api.User) string {
	text := groupsText(u.EffectiveGroups)
	for _, g := range u.Groups {
		name := g
		if !strings.HasPrefix(name, "group:") {
			name = "group:" + g
		}
		if !slices.ContainsFunc(u.EffectiveGroups, func(m api.GroupMembership) bool { return m.Group == name }) {
			if text != "" {
				text += ", "
			}
			text += g + " (not in the policy)"
		}
	}
	return orDash(text)
}

// nameOr is a user's name, or its ID when the name is not known.
func nameOr(name string, id int64) string {
	if name != "" {
		return name
	}
	return strconv.FormatInt(id, 10)
}

// expiresText says when a key expires.
func expiresText(t time.Time) string {
	if t.IsZero() {
		return "never expires"
	}
	return "expires " + when(t)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var adminCommands = map[string]func(*command, []string) error{
	"nodes routes":   nodeRoutesCmd,
	"nodes attrs":    nodeAttrsCmd,
	"attrs list":     listAttrsCmd,
	"attrs set":      setAttrsCmd,
	"attrs unset":    unsetAttrsCmd,
	"routes list":    listRoutesCmd,
	"routes approve": func(c *command, args []string) error { return changeRoutesCmd(c, args, "approve") },
	"routes disable": func(c *command, args []string) error { return changeRoutesCmd(c, args, "disable") },
	"users list": func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "users list [--json]"); err != nil {
			return err
		}
		users, err := c.c.ListUsers(c.ctx)
		if err != nil {
			return err
		}
		return c.print(users, "ID\tNAME\tROLE\tGROUPS\tSIGN-IN\tLAST MFA\tDISABLED\tCREATED", func(w io.Writer) {
			for _, u := range users {
				lastMFA := "-"
				if u.LastMFA != nil {
					lastMFA = when(*u.LastMFA)
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", u.ID, u.Name, u.Role, userGroups(u),
					signIn(u), lastMFA, u.Disabled, when(u.Created))
			}
		})
	},
	"users create": func(c *command, args []string) error {
		isAdmin := c.fs.Bool("admin", false, "make the user an admin")
		email := c.fs.String("email", "", "email (default: the name)")
		var groups cli.StringList
		c.fs.Var(&groups, "group", "group (repeatable)")
		if err := c.parse(args, 1, 1, "users create NAME [--admin] [--email E] [--group G]..."); err != nil {
			return err
		}
		if *email == "" && strings.Contains(c.args[0], "@") {
			*email = c.args[0]
		}
		u, err := c.c.CreateUser(c.ctx, api.CreateUserRequest{Name: c.args[0], Email: *email, Groups: groups, Admin: *isAdmin})
		if err != nil {
			return err
		}
		return c.print(u, "ID\tNAME\tROLE", func(w io.Writer) { fmt.Fprintf(w, "%d\t%s\t%s\n", u.ID, u.Name, u.Role) })
	},
	"users passwd":  usersPasswd,
	"users totp":    usersTOTP,
	"users disable": func(c *command, args []string) error { return setDisabled(c, args, true) },
	"users enable":  func(c *command, args []string) error { return setDisabled(c, args, false) },
	"users set-role": func(c *command, args []string) error {
		if err := c.parse(args, 2, 2, "users set-role USER admin|member"); err != nil {
			return err
		}
		if r := c.args[1]; r != "admin" && r != "member" {
			return fmt.Errorf("role %q: want admin or member", r)
		}
		id, err := c.userID(c.args[0])
		if err != nil {
			return err
		}
		u, err := c.c.SetUserRole(c.ctx, id, c.args[1])
		if err != nil {
			return err
		}
		return c.print(u, "ID\tNAME\tROLE", func(w io.Writer) { fmt.Fprintf(w, "%d\t%s\t%s\n", u.ID, u.Name, u.Role) })
	},
	"users delete": func(c *command, args []string) error {
		if err := c.parse(args, 1, 1, "users delete USER"); err != nil {
			return err
		}
		id, err := c.userID(c.args[0])
		if err == nil {
			err = c.c.DeleteUser(c.ctx, id)
		}
		if err == nil {
			fmt.Fprintf(c.out, "deleted user %s with its nodes and keys (tagged nodes kept)\n", c.args[0])
		}
		return err
	},
	"nodes list": func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "nodes list [--json]"); err != nil {
			return err
		}
		nodes, err := c.c.ListNodes(c.ctx)
		if err != nil {
			return err
		}
		return c.print(nodes, "ID\tNAME\tOWNER\tIPV4\tIPV6\tONLINE\tLAST SEEN\tKEY EXPIRY", func(w io.Writer) {
			for _, n := range nodes {
				owner := n.User
				if len(n.Tags) > 0 {
					owner = strings.Join(n.Tags, ",")
				}
				expiry := when(n.KeyExpiry)
				if n.Expired {
					expiry = "EXPIRED"
				}
				if n.Pending {
					expiry = "PENDING APPROVAL (nodes approve " + fmt.Sprint(n.ID) + ")"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%v\t%s\t%s\n", n.ID, n.Name, orDash(owner), n.IPv4, n.IPv6, n.Online, when(n.LastSeen), expiry)
			}
		})
	},
	"nodes approve": func(c *command, args []string) error {
		return nodeChange(c, args, "nodes approve ID", 1, 1, func(id int64) (api.Node, error) { return c.c.ApproveNode(c.ctx, id) })
	},
	"nodes expire": func(c *command, args []string) error {
		return nodeChange(c, args, "nodes expire ID", 1, 1, func(id int64) (api.Node, error) { return c.c.ExpireNode(c.ctx, id) })
	},
	"nodes key-lifetime": func(c *command, args []string) error {
		if err := c.parse(args, 2, 2, "nodes key-lifetime ID DURATION|never|default"); err != nil {
			return err
		}
		id, err := c.id(0)
		if err != nil {
			return err
		}
		lifetime, err := api.ParseKeyLifetime(c.args[1])
		if err != nil {
			return err
		}
		n, err := c.c.SetKeyLifetime(c.ctx, id, lifetime)
		if err != nil {
			return err
		}
		return c.print(n, "ID\tNAME\tKEY LIFETIME\tKEY EXPIRY", func(w io.Writer) {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", n.ID, n.Name, cmp.Or(n.KeyLifetime, "default"), when(n.KeyExpiry))
		})
	},
	"nodes tag": func(c *command, args []string) error {
		return nodeChange(c, args, "nodes tag ID [TAG...]  (no tags: untag)", 1, -1, func(id int64) (api.Node, error) {
			return c.c.TagNode(c.ctx, id, c.args[1:])
		})
	},
	"nodes rename": func(c *command, args []string) error {
		return nodeChange(c, args, "nodes rename ID NAME", 2, 2, func(id int64) (api.Node, error) {
			return c.c.RenameNode(c.ctx, id, c.args[1])
		})
	},
	"nodes delete": func(c *command, args []string) error {
		if err := c.parse(args, 1, 1, "nodes delete ID"); err != nil {
			return err
		}
		id, err := c.id(0)
		if err == nil {
			err = c.c.DeleteNode(c.ctx, id)
		}
		if err == nil {
			fmt.Fprintf(c.out, "deleted node %d; its peers no longer see it\n", id)
		}
		return err
	},
	"keys list": func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "keys list [--json]"); err != nil {
			return err
		}
		keys, err := c.c.ListAuthKeys(c.ctx)
		if err != nil {
			return err
		}
		return c.print(keys, "ID\tPREFIX\tUSER\tCREATED BY\tREUSABLE\tEPHEMERAL\tTAGS\tUSED\tEXPIRES\tREVOKED", func(w io.Writer) {
			for _, k := range keys {
				fmt.Fprintf(w, "%d\t%s…\t%s\t%s\t%v\t%v\t%s\t%d\t%s\t%v\n", k.ID, k.Prefix, nameOr(k.User, k.UserID), orDash(k.Creator),
					k.Reusable, k.Ephemeral, orDash(strings.Join(k.Tags, ",")), k.UsedCount, when(k.Expiration), k.Revoked)
			}
		})
	},
	"keys create": func(c *command, args []string) error {
		user := c.fs.String("user", "", "owning user (name or ID); default: the caller")
		reusable := c.fs.Bool("reusable", false, "allow many registrations")
		ephemeral := c.fs.Bool("ephemeral", false, "nodes are deleted soon after they go offline")
		ttl := c.fs.Duration("ttl", 0, "key lifetime, e.g. 24h (default: 1h for a single-use key, never for a --reusable one)")
		var tags cli.StringList
		c.fs.Var(&tags, "tag", "tag for nodes registered with the key (repeatable)")
		if err := c.parse(args, 0, 0, "keys create --user USER [--reusable] [--ephemeral] [--tag T]... [--ttl D]"); err != nil {
			return err
		}
		var uid int64
		if *user != "" {
			var err error
			if uid, err = c.userID(*user); err != nil {
				return err
			}
		}
		k, err := c.c.CreateAuthKey(c.ctx, api.CreateAuthKeyRequest{UserID: uid, Reusable: *reusable, Ephemeral: *ephemeral, Tags: tags, TTL: api.Duration(*ttl)})
		if err != nil {
			return err
		}
		if c.af.json {
			return c.print(k, "", nil)
		}
		fmt.Fprintf(c.out, "pre-auth key %d, %s, %s (shown once, store it now):\n%s\n", k.ID,
			map[bool]string{true: "reusable", false: "single-use"}[k.Reusable], expiresText(k.Expiration), k.Key)
		return nil
	},
	"keys revoke": func(c *command, args []string) error { return revokeKey(c, args, false) },
	"keys expire": func(c *command, args []string) error { return revokeKey(c, args, true) },
	"apikeys list": func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "apikeys list [--json]"); err != nil {
			return err
		}
		keys, err := c.c.ListAPIKeys(c.ctx)
		if err != nil {
			return err
		}
		return c.print(keys, "ID\tPREFIX\tUSER\tCREATED\tLAST USED\tEXPIRES\tREVOKED", func(w io.Writer) {
			for _, k := range keys {
				user := nameOr(k.User, k.UserID)
				if k.Role != "" {
					user += " (" + k.Role + " " + k.Name + ")"
				}
				fmt.Fprintf(w, "%d\t%s…\t%s\t%s\t%s\t%s\t%v\n", k.ID, k.Prefix, user, when(k.Created), when(k.LastUsed), when(k.Expiration), k.Revoked)
			}
		})
	},
	"apikeys create": func(c *command, args []string) error {
		user := c.fs.String("user", "", "owning user (name or ID); default: the caller")
		ttl := c.fs.Duration("ttl", 0, "key lifetime, e.g. 720h (default: never expires)")
		role := c.fs.String("role", "", `"integration": a key that may only read nodes' attributes and set custom: ones (admins only; needs --name)`)
		name := c.fs.String("name", "", "an integration key's name, the source of what it sets (e.g. mdm-sync)")
		if err := c.parse(args, 0, 0, "apikeys create [--user USER] [--ttl D] [--role integration --name NAME]"); err != nil {
			return err
		}
		var uid int64
		if *user != "" {
			var err error
			if uid, err = c.userID(*user); err != nil {
				return err
			}
		}
		k, err := c.c.CreateAPIKey(c.ctx, api.CreateAPIKeyRequest{UserID: uid, TTL: api.Duration(*ttl), Role: *role, Name: *name})
		if err != nil {
			return err
		}
		if c.af.json {
			return c.print(k, "", nil)
		}
		if k.Role != "" {
			fmt.Fprintf(c.out, "%s API key %d %q (shown once, store it now):\n%s\n", k.Role, k.ID, k.Name, k.Key)
			return nil
		}
		fmt.Fprintf(c.out, "API key %d (shown once, store it now):\n%s\n", k.ID, k.Key)
		return nil
	},
}

func setDisabled(c *command, args []string, disabled bool) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	if err := c.parse(args, 1, 1, "users "+verb+" USER"); err != nil {
		return err
	}
	id, err := c.userID(c.args[0])
	if err != nil {
		return err
	}
	u, err := c.c.SetUserDisabled(c.ctx, id, disabled)
	if err != nil {
		return err
	}
	return c.print(u, "ID\tNAME\tDISABLED", func(w io.Writer) { fmt.Fprintf(w, "%d\t%s\t%v\n", u.ID, u.Name, u.Disabled) })
}

func nodeChange(c *command, args []string, usage string, minArgs, maxArgs int, fn func(int64) (api.Node, error)) error {
	if err := c.parse(args, minArgs, maxArgs, usage); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	n, err := fn(id)
	if err != nil {
		return err
	}
	return c.print(n, "ID\tNAME\tTAGS\tKEY EXPIRY", func(w io.Writer) {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", n.ID, n.Name, orDash(strings.Join(n.Tags, ",")), when(n.KeyExpiry))
	})
}

func revokeKey(c *command, args []string, expire bool) error {
	if err := c.parse(args, 1, 1, "keys revoke|expire ID"); err != nil {
		return err
	}
	id, err := c.id(0)
	if err != nil {
		return err
	}
	k, err := c.c.RevokeAuthKey(c.ctx, id, expire)
	if err != nil {
		return err
	}
	return c.print(k, "ID\tPREFIX\tEXPIRES\tREVOKED", func(w io.Writer) {
		fmt.Fprintf(w, "%d\t%s…\t%s\t%v\n", k.ID, k.Prefix, when(k.Expiration), k.Revoked)
	})
}
