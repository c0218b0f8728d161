package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// policy compile: the dry-run compiler. It compiles a policy file for an
// inventory of nodes given in a file, without a coordinator, through the
// same policy.Graph the coordinator's netmap engine uses, and prints each
// node's inbound packet filter and peers. The input and output formats are
// an interface for admins' CI and are documented (and kept stable) in
// ops/policy/README.md.

// maxInventory bounds the inventory file (it is read whole).
const maxInventory = 64 << 20

// inventory is NODES.json. Unknown fields are ignored.
type inventory struct {
	Nodes []inventoryNode `json:"nodes"`
	// Groups are the identity provider's groups by login.
	Groups map[string][]string `json:"groups"`
}

// inventoryNode is one node of NODES.json.
type inventoryNode struct {
	Name      string   `json:"name"`
	User      string   `json:"user"` // "" for a tagged node
	Tags      []string `json:"tags"`
	Addresses []string `json:"addresses"` // "100.64.0.5/32" or "100.64.0.5"
	// Routes are the node's approved routes (an approved exit node has
	// 0.0.0.0/0 and ::/0 among them); ExitNode is informational, as in
	// Tailscale: only the routes count.
	Routes   []string          `json:"routes"`
	ExitNode bool              `json:"exitNode"`
	Attrs    map[string]string `json:"attrs"`
	// Admin (a Warren extension) gives the owner the admin role, for
	// autogroup:admin.
	Admin bool `json:"admin"`
}

// parseInventory decodes NODES.json into policy nodes, in file order, with
// IDs 1, 2, ... and their names by ID.
func parseInventory(b []byte) ([]policy.Node, map[wire.NodeID]string, error) {
	var inv inventory
	if err := json.Unmarshal(b, &inv); err != nil {
		return nil, nil, fmt.Errorf("not a nodes file (want {\"nodes\": [...]}): %w", err)
	}
	groups := map[string][]string{}
	for login, gs := range inv.Groups {
		groups[strings.ToLower(login)] = gs
	}
	nodes := make([]policy.Node, 0, len(inv.Nodes))
	names := make(map[wire.NodeID]string, len(inv.Nodes))
	seen := map[string]bool{}
	for i, in := range inv.Nodes {
		if in.Name == "" {
			return nil, nil, fmt.Errorf("node #%d has no name", i+1)
		}
		if seen[in.Name] {
			return nil, nil, fmt.Errorf("node %q: the name is used twice", in.Name)
		}
		seen[in.Name] = true
		if (in.User == "") == (len(in.Tags) == 0) {
			return nil, nil, fmt.Errorf("node %q: give either a user or tags (a tagged node has user \"\")", in.Name)
		}
		n := policy.Node{ID: wire.NodeID(i + 1), User: in.User, Tags: in.Tags, Attrs: in.Attrs, Admin: in.Admin}
		if in.User != "" {
			n.Groups = groups[strings.ToLower(in.User)]
		}
		for _, a := range in.Addresses {
			p, err := parseHostPrefix(a)
			if err != nil {
				return nil, nil, fmt.Errorf("node %q: address %w", in.Name, err)
			}
			n.Addresses = append(n.Addresses, p)
		}
		if len(n.Addresses) == 0 {
			return nil, nil, fmt.Errorf("node %q has no addresses", in.Name)
		}
		for _, r := range in.Routes {
			p, err := netip.ParsePrefix(r)
			if err != nil || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
				return nil, nil, fmt.Errorf("node %q: route %q is not a CIDR prefix like 10.33.0.0/16", in.Name, r)
			}
			n.Routes = append(n.Routes, p)
		}
		nodes = append(nodes, n)
		names[n.ID] = in.Name
	}
	return nodes, names, nil
}

// parseHostPrefix accepts one address, bare or as a /32 or /128.
func parseHostPrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Bits() != p.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("%q is not one address (100.64.0.5, 100.64.0.5/32 or fd7a:115c:a1e0::5/128)", s)
	}
	return p, nil
}

// compiled is the output of policy compile --json.
type compiled struct {
	Nodes map[string]compiledNode `json:"nodes"`
}

type compiledNode struct {
	Filter []compiledRule `json:"filter"`
	Peers  []string       `json:"peers"`
}

// compiledRule is one wire.FilterRule, sorted: sources in address order,
// destinations by prefix then ports, protocols by number (absent: TCP,
// UDP and ICMP).
type compiledRule struct {
	Src    []string      `json:"src"`
	Dst    []compiledDst `json:"dst"`
	Protos []string      `json:"protos,omitempty"`
}

type compiledDst struct {
	Prefix string `json:"prefix"`
	Ports  string `json:"ports"` // always first-last
}

// compilePolicy compiles p for nodes at now, as the coordinator would for
// nodes that are all authorized and active.
func compilePolicy(p *policy.Policy, nodes []policy.Node, names map[wire.NodeID]string, now time.Time) compiled {
	g := policy.NewGraph(p, now, nodes...)
	out := compiled{Nodes: make(map[string]compiledNode, len(nodes))}
	// Peers are listed by name: rank every node by name once, collect a
	// node's peers as ranks (a slice lookup each) and sort those.
	sorted := slices.Clone(nodes)
	slices.SortFunc(sorted, func(a, b policy.Node) int { return strings.Compare(names[a.ID], names[b.ID]) })
	maxID := wire.NodeID(0)
	for _, n := range nodes {
		maxID = max(maxID, n.ID)
	}
	rank := make([]int32, maxID+1)
	for i := range rank {
		rank[i] = -1
	}
	sortedNames := make([]string, len(sorted))
	for i, n := range sorted {
		sortedNames[i] = names[n.ID]
		if n.ID >= 0 {
			rank[n.ID] = int32(i)
		}
	}
	var rr renderer
	var peers []int32
	for _, n := range nodes {
		cn := compiledNode{Filter: []compiledRule{}}
		for _, fr := range g.Filter(n.ID) {
			if len(fr.CapGrant) > 0 {
				// Capability rules allow no packet; the output lists
				// what the packet filter allows.
				continue
			}
			cn.Filter = append(cn.Filter, rr.rule(fr))
		}
		slices.SortFunc(cn.Filter, compareRules)
		cn.Filter = slices.CompactFunc(cn.Filter, func(a, b compiledRule) bool { return compareRules(a, b) == 0 })
		peers = peers[:0]
		g.Peers(n.ID, func(id wire.NodeID) bool {
			if id != n.ID && id >= 0 && id <= maxID && rank[id] >= 0 {
				peers = append(peers, rank[id])
			}
			return true
		})
		slices.Sort(peers)
		peers = slices.Compact(peers)
		cn.Peers = make([]string, len(peers))
		for i, r := range peers {
			cn.Peers[i] = sortedNames[r]
		}
		out.Nodes[names[n.ID]] = cn
	}
	return out
}

// renderer turns filter rules into their output form. The graph shares
// one SrcPrefixes slice between every node a rule applies to (and it may
// hold thousands of addresses), so each is sorted and rendered once.
type renderer struct {
	srcs map[srcKey][]string
}

type srcKey struct {
	first *netip.Prefix
	n     int
}

func (rr *renderer) src(ps []netip.Prefix) []string {
	if len(ps) == 0 {
		return []string{}
	}
	k := srcKey{&ps[0], len(ps)}
	if out, ok := rr.srcs[k]; ok {
		return out
	}
	sorted := slices.Clone(ps)
	slices.SortFunc(sorted, comparePrefixes)
	sorted = slices.Compact(sorted)
	out := make([]string, len(sorted))
	for i, p := range sorted {
		out[i] = p.Masked().String()
	}
	if rr.srcs == nil {
		rr.srcs = map[srcKey][]string{}
	}
	rr.srcs[k] = out
	return out
}

func (rr *renderer) rule(fr wire.FilterRule) compiledRule {
	r := compiledRule{Src: rr.src(fr.SrcPrefixes)}
	dst := slices.Clone(fr.DstPorts)
	slices.SortFunc(dst, func(a, b wire.PortRange) int {
		if c := comparePrefixes(a.Prefix, b.Prefix); c != 0 {
			return c
		}
		if a.First != b.First {
			return int(a.First) - int(b.First)
		}
		return int(a.Last) - int(b.Last)
	})
	dst = slices.Compact(dst)
	for _, d := range dst {
		r.Dst = append(r.Dst, compiledDst{Prefix: d.Prefix.Masked().String(), Ports: fmt.Sprintf("%d-%d", d.First, d.Last)})
	}
	protos := slices.Clone(fr.Protocols)
	slices.Sort(protos)
	for _, p := range slices.Compact(protos) {
		r.Protos = append(r.Protos, protoText(p))
	}
	return r
}

// compareRules orders filter entries by sources, then destinations, then
// protocols.
func compareRules(a, b compiledRule) int {
	if c := slices.Compare(a.Src, b.Src); c != 0 {
		return c
	}
	if c := slices.CompareFunc(a.Dst, b.Dst, func(x, y compiledDst) int {
		if c := strings.Compare(x.Prefix, y.Prefix); c != 0 {
			return c
		}
		return strings.Compare(x.Ports, y.Ports)
	}); c != 0 {
		return c
	}
	return slices.Compare(a.Protos, b.Protos)
}

// comparePrefixes orders IPv4 before IPv6, then by address, then by
// length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// protoText names the common protocols and writes the others as numbers.
func protoText(p int) string {
	switch p {
	case 1:
		return "icmp"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(p)
}

// compileFiles reads and compiles one policy file against the nodes file.
// A rejected policy is a *policyRejected.
func compileFiles(policyPath, nodesPath string, now time.Time) (compiled, error) {
	nb, err := readLimited(nodesPath)
	if err != nil {
		return compiled{}, usageError(err)
	}
	nodes, names, err := parseInventory(nb)
	if err != nil {
		return compiled{}, usageError(fmt.Errorf("%s: %w", nodesPath, err))
	}
	p, err := loadPolicy(policyPath)
	if err != nil {
		return compiled{}, err
	}
	return compilePolicy(p, nodes, names, now), nil
}

// policyRejected is a policy file Parse refused.
type policyRejected struct {
	file   string
	errors policy.Errors
}

func (e *policyRejected) Error() string {
	var b strings.Builder
	for i, pe := range e.errors {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s:%s", e.file, pe.Error())
	}
	return b.String()
}

func loadPolicy(path string) (*policy.Policy, error) {
	src, err := readLimited(path)
	if err != nil {
		return nil, usageError(err)
	}
	p, err := policy.Parse(src)
	if err != nil {
		var es policy.Errors
		if !errors.As(err, &es) {
			es = policy.Errors{{Message: err.Error()}}
		}
		return nil, &policyRejected{file: path, errors: es}
	}
	return p, nil
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		// %v, not %w: this is no missing admin socket, and must not get
		// the "no coordinator is serving" hint.
		return nil, fmt.Errorf("%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInventory+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxInventory {
		return nil, fmt.Errorf("%s: larger than %d MiB", path, maxInventory>>20)
	}
	return b, nil
}

// usageError is exit status 2: bad arguments or unreadable input.
func usageError(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	var ee *cli.ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &cli.ExitError{Code: 2, Err: err}
}

// compileExit maps policy compile's outcome to its exit status: 0 ok,
// 1 a policy rejected (its errors printed), 2 a usage or input error.
func compileExit(c *command, err error) error {
	var rej *policyRejected
	if errors.As(err, &rej) {
		if c.af.json {
			if perr := cli.PrintJSON(c.out, fileCheck{File: rej.file, Errors: rej.errors}); perr != nil {
				return perr
			}
		} else {
			fmt.Fprintln(c.out, rej.Error())
			fmt.Fprintf(c.out, "%s: REJECTED, %d error(s)\n", rej.file, len(rej.errors))
		}
		return &cli.ExitError{Code: 1}
	}
	return usageError(err)
}

func policyCompile(c *command, args []string) error {
	file := c.fs.String("file", "", "the policy file to compile")
	nodesFile := c.fs.String("nodes", "", "the inventory: a JSON file of nodes (see ops/policy/README.md)")
	diff := c.fs.Bool("diff", false, "compare two policy files, given as OLD NEW, instead of --file")
	at := c.fs.String("at", "", "compile for this moment, RFC 3339, for time windows (default now)")
	err := c.parse(args, 0, 2, "policy compile --file POLICY --nodes NODES.json [--at T] [--json]\n"+
		"       warren-coordinator policy compile --diff OLD NEW --nodes NODES.json [--at T] [--json]")
	if err != nil {
		return err
	}
	switch {
	case *nodesFile == "":
		return errors.New("--nodes NODES.json is required")
	case *diff && (len(c.args) != 2 || *file != ""):
		return errors.New("usage: policy compile --diff OLD NEW --nodes NODES.json")
	case !*diff && (*file == "" || len(c.args) != 0):
		return errors.New("usage: policy compile --file POLICY --nodes NODES.json")
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, *at); err != nil {
			return fmt.Errorf("--at: %w", err)
		}
	}
	if *diff {
		return compileDiff(c, c.args[0], c.args[1], *nodesFile, now)
	}
	out, err := compileFiles(*file, *nodesFile, now)
	if err != nil {
		return err
	}
	if c.af.json {
		return cli.PrintJSON(c.out, out)
	}
	printCompiled(c.out, out)
	return nil
}

// printCompiled writes the readable form: per node, its peers and one line
// per filter entry.
func printCompiled(w io.Writer, out compiled) {
	var b bytes.Buffer
	for i, name := range sortedNames(out.Nodes) {
		n := out.Nodes[name]
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s\n  peers: %s\n", name, orNone(strings.Join(n.Peers, ", ")))
		if len(n.Filter) == 0 {
			b.WriteString("  filter: none (every inbound connection is dropped)\n")
			continue
		}
		b.WriteString("  filter:\n")
		for _, r := range n.Filter {
			fmt.Fprintf(&b, "    from %s\n      to %s  %s\n", strings.Join(r.Src, ", "), dstText(r.Dst), protosText(r.Protos))
		}
	}
	w.Write(b.Bytes())
}

func dstText(ds []compiledDst) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Prefix + ":" + portsText(d.Ports)
	}
	return strings.Join(parts, ", ")
}

// portsText writes "0-65535" as "*" and "22-22" as "22".
func portsText(p string) string {
	if p == "0-65535" {
		return "*"
	}
	if a, b, ok := strings.Cut(p, "-"); ok && a == b {
		return a
	}
	return p
}

func protosText(ps []string) string {
	if len(ps) == 0 {
		return "(tcp, udp, icmp)"
	}
	return "(" + strings.Join(ps, ", ") + ")"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func init() {
	adminCommands["policy compile"] = func(c *command, args []string) error {
		return compileExit(c, policyCompile(c, args))
	}
}
