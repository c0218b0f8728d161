package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/policy"
)

// Policy commands. check and test work offline on files (for CI in a git
// repository of policies); show, history and reload talk to the running
// coordinator; explain does either (--file for offline).

// fileCheck is the outcome of validating one policy file.
type fileCheck struct {
	File     string          `json:"file"`
	OK       bool            `json:"ok"`
	Hash     string          `json:"hash,omitempty"`
	Rules    int             `json:"rules"`
	Tests    int             `json:"tests"`
	SSHRules int             `json:"sshRules,omitempty"`
	SSHTests int             `json:"sshTests,omitempty"`
	Errors   []*policy.Error `json:"errors,omitempty"`
	Warnings []*policy.Error `json:"warnings,omitempty"`
}

func checkFile(path string) fileCheck {
	fc := fileCheck{File: path}
	src, err := os.ReadFile(path)
	if err != nil {
		fc.Errors = []*policy.Error{{Message: err.Error()}}
		return fc
	}
	p, err := policy.Parse(src)
	if err != nil {
		var es policy.Errors
		if !errors.As(err, &es) {
			es = policy.Errors{{Message: err.Error()}}
		}
		fc.Errors = es
		return fc
	}
	fc.OK, fc.Hash, fc.Warnings = true, p.Hash(), p.Warnings()
	fc.Rules, fc.Tests = p.RuleCount(), p.TestCount()
	fc.SSHRules, fc.SSHTests = p.SSHRuleCount(), p.SSHTestCount()
	return fc
}

// checkFiles validates files and prints compiler-style diagnostics (or
// JSON). It fails if any file is invalid.
func checkFiles(c *command, files []string, testsOnly bool) error {
	var results []fileCheck
	bad := 0
	for _, f := range files {
		fc := checkFile(f)
		if !fc.OK {
			bad++
		}
		results = append(results, fc)
	}
	if c.af.json {
		if err := cli.PrintJSON(c.out, results); err != nil {
			return err
		}
	} else {
		for _, fc := range results {
			for _, e := range fc.Errors {
				fmt.Fprintf(c.out, "%s:%s\n", fc.File, e.Error())
			}
			for _, w := range fc.Warnings {
				fmt.Fprintf(c.out, "%s:%s (warning)\n", fc.File, w.Error())
			}
			switch {
			case !fc.OK:
				fmt.Fprintf(c.out, "%s: INVALID, %d error(s)\n", fc.File, len(fc.Errors))
			case testsOnly:
				fmt.Fprintf(c.out, "%s: %d test(s) passed%s\n", fc.File, fc.Tests, sshSummary(fc))
			default:
				fmt.Fprintf(c.out, "%s: ok, %d rule(s), %d test(s) passed%s, %d warning(s)\n", fc.File, fc.Rules, fc.Tests, sshSummary(fc), len(fc.Warnings))
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d policy file(s) invalid", bad, len(files))
	}
	return nil
}

// sshSummary is ", N ssh rule(s), M ssh test(s) passed" for
// a file with ssh rules or tests, or "".
func sshSummary(fc fileCheck) string {
	if fc.SSHRules == 0 && fc.SSHTests == 0 {
		return ""
	}
	return fmt.Sprintf(", %d ssh rule(s), %d ssh test(s) passed", fc.SSHRules, fc.SSHTests)
}

// splitHostPort splits "db:5432", "100.64.0.1:22" or "[fd7a::1]:80".
func splitHostPort(s string) (string, uint16, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return "", 0, fmt.Errorf("%q: want DST:PORT", s)
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	} else if strings.Contains(host, ":") && !strings.HasPrefix(host, "tag:") && !strings.HasPrefix(host, "group:") {
		if _, err := netip.ParseAddr(host); err == nil {
			return "", 0, fmt.Errorf("%q: write IPv6 destinations as [ADDR]:PORT", s)
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%q: bad port %q", s, port)
	}
	return host, uint16(n), nil
}

// errDenied is policy explain's answer DENIED: exit status 1, and nothing
// more to print.
var errDenied = &cli.ExitError{Code: 1}

// Exit statuses of policy explain, documented in the README: 0 ALLOWED,
// 1 DENIED, 2 no answer (a usage error, an unreachable coordinator, a
// broken policy file).
func explainExit(err error) error {
	if err == nil || err == errDenied || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &cli.ExitError{Code: 2, Err: err}
}

// printExplain prints the answer and returns errDenied if it is DENIED.
func printExplain(c *command, r api.ExplainResponse) error {
	if err := printExplainAnswer(c, r); err != nil {
		return err
	}
	if !r.Allowed {
		return errDenied
	}
	return nil
}

func printExplainAnswer(c *command, r api.ExplainResponse) error {
	if c.af.json {
		return cli.PrintJSON(c.out, r)
	}
	verdict := "DENIED"
	if r.Allowed {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(c.out, "%s → %s: %s\n", r.Src, r.Dst, verdict)
	if len(r.SrcGroups) > 0 {
		fmt.Fprintf(c.out, "  source groups: %s\n", groupsText(r.SrcGroups))
	}
	if r.Rule != nil {
		fmt.Fprintf(c.out, "  by acls rule #%d (line %d): %s\n", r.Rule.Index, r.Rule.Line, r.Rule.Text)
	}
	if g := r.Grant; g != nil {
		fmt.Fprintf(c.out, "  by grant %s (%s, until %s): %s\n", g.ID, g.Rule, g.Until.UTC().Format(time.RFC3339), g.Dst)
	}
	if !r.Allowed && len(r.Candidates) == 0 {
		fmt.Fprintln(c.out, "  no rule comes close: deny by default")
	}
	for _, cand := range r.Candidates {
		fmt.Fprintf(c.out, "  acls rule #%d (line %d): %s\n", cand.Rule.Index, cand.Rule.Line, cand.Rule.Text)
		for _, why := range cand.Reasons {
			fmt.Fprintf(c.out, "    - %s\n", why)
		}
	}
	return nil
}

func init() {
	adminCommands["policy check"] = func(c *command, args []string) error {
		if err := c.parse(args, 1, -1, "policy check FILE... [--json]"); err != nil {
			return err
		}
		return checkFiles(c, c.args, false)
	}
	adminCommands["policy test"] = func(c *command, args []string) error {
		if err := c.parse(args, 1, -1, "policy test FILE... [--json]"); err != nil {
			return err
		}
		return checkFiles(c, c.args, true)
	}
	adminCommands["policy show"] = func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "policy show [--json]"); err != nil {
			return err
		}
		st, err := c.c.PolicyStatus(c.ctx)
		if err != nil {
			return err
		}
		if c.af.json {
			return cli.PrintJSON(c.out, st)
		}
		fmt.Fprintf(c.out, "version %d, sha256 %s\napplied %s by %s\n", st.Version, st.Hash, when(st.Applied), st.Author)
		for _, w := range st.Warnings {
			fmt.Fprintf(c.out, "warning: %s\n", w)
		}
		if r := st.Rejected; r != nil {
			fmt.Fprintf(c.out, "\nthe file on disk was REJECTED at %s (the version above stays in force):\n%s\n", when(r.At), r.Error)
		}
		fmt.Fprintf(c.out, "\n%s", st.Source)
		return nil
	}
	adminCommands["policy history"] = func(c *command, args []string) error {
		limit := c.fs.Int("limit", 20, "at most this many versions")
		diff := c.fs.Bool("diff", false, "print each version's diff")
		if err := c.parse(args, 0, 0, "policy history [--limit N] [--diff] [--json]"); err != nil {
			return err
		}
		vs, err := c.c.PolicyHistory(c.ctx, *limit)
		if err != nil {
			return err
		}
		if *diff && !c.af.json {
			for _, v := range vs {
				fmt.Fprintf(c.out, "version %d  %s  %s  %s\n%s\n", v.ID, when(v.Created), v.Hash[:min(12, len(v.Hash))], v.Author, orDash(v.Diff))
			}
			return nil
		}
		return c.print(vs, "VERSION\tAPPLIED\tSHA256\tAUTHOR", func(w io.Writer) {
			for _, v := range vs {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\n", v.ID, when(v.Created), v.Hash[:min(12, len(v.Hash))], v.Author)
			}
		})
	}
	adminCommands["policy reload"] = func(c *command, args []string) error {
		if err := c.parse(args, 0, 0, "policy reload [--json]"); err != nil {
			return err
		}
		st, err := c.c.ReloadPolicy(c.ctx)
		if err != nil {
			return err
		}
		if c.af.json {
			return cli.PrintJSON(c.out, st)
		}
		fmt.Fprintf(c.out, "policy version %d in force (sha256 %s)\n", st.Version, st.Hash[:min(12, len(st.Hash))])
		return nil
	}
	adminCommands["policy apply"] = func(c *command, args []string) error {
		if err := c.parse(args, 1, 1, "policy apply FILE [--json]"); err != nil {
			return err
		}
		src, err := os.ReadFile(c.args[0])
		if err != nil {
			return err
		}
		st, err := c.c.ApplyPolicy(c.ctx, src)
		if err != nil {
			return fmt.Errorf("%s: %w", c.args[0], err)
		}
		if c.af.json {
			return cli.PrintJSON(c.out, st)
		}
		if !st.Changed {
			fmt.Fprintf(c.out, "unchanged: %s is policy version %d, in force since %s (no new version)\n", c.args[0], st.Version, when(st.Applied))
			return nil
		}
		fmt.Fprintf(c.out, "policy version %d in force (sha256 %s), by %s\n", st.Version, st.Hash[:min(12, len(st.Hash))], st.Author)
		return nil
	}
	adminCommands["policy explain"] = func(c *command, args []string) error { return explainExit(policyExplain(c, args)) }
}

// groupsText writes group memberships as "group:eng (policy+idp), …".
func groupsText(gs []api.GroupMembership) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.Group + " (" + strings.Join(g.Sources, "+") + ")"
	}
	return strings.Join(parts, ", ")
}

func policyExplain(c *command, args []string) error {
	file := c.fs.String("file", "", "explain against this policy file, offline (default: the running coordinator's policy)")
	proto := c.fs.String("proto", "tcp", "protocol name or number")
	at := c.fs.String("at", "", "moment of the connection, RFC 3339 (default now)")
	var posture cli.StringList
	c.fs.Var(&posture, "posture", "source posture attribute KEY=VALUE, e.g. node:os=macos (repeatable; for a source given as a selector)")
	mfaAge := c.fs.String("mfa-age", "", "age of the source user's last MFA login, e.g. 2h (for a source given as a selector)")
	if err := c.parse(args, 2, 2, "policy explain SRC DST:PORT [--file F] [--proto P] [--at T] [--posture K=V]... [--mfa-age D] [--json]"); err != nil {
		return err
	}
	dst, port, err := splitHostPort(c.args[1])
	if err != nil {
		return err
	}
	req := api.ExplainRequest{Src: c.args[0], Dst: dst, Port: port, Proto: *proto, MFAAge: *mfaAge}
	if *at != "" {
		if req.At, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("--at: %w", err)
		}
	}
	for _, kv := range posture {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--posture %q: want KEY=VALUE", kv)
		}
		if req.Posture == nil {
			req.Posture = map[string]string{}
		}
		req.Posture[k] = v
	}
	if *file == "" {
		r, err := c.c.ExplainPolicy(c.ctx, req)
		if err != nil {
			return err
		}
		return printExplain(c, r)
	}
	src, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	p, err := policy.Parse(src)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	q := policy.Query{Src: req.Src, Dst: req.Dst, Port: req.Port, Proto: req.Proto, At: req.At, SrcPostureAttrs: req.Posture}
	if q.At.IsZero() {
		q.At = time.Now()
	}
	if req.MFAAge != "" {
		d, err := time.ParseDuration(req.MFAAge)
		if err != nil {
			return fmt.Errorf("--mfa-age: %w", err)
		}
		q.MFAAge = &d
	}
	r, err := api.ExplainOffline(p, q)
	if err != nil {
		return err
	}
	return printExplain(c, r)
}
