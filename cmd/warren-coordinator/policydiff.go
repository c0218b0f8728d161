package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/warrenmesh/warren/internal/cli"
)

// policy compile --diff: which nodes gain or lose which access between two
// versions of a policy file, for the same inventory.

// access is one flattened filter entry: from one source prefix to one
// destination prefix and port range over the listed protocols ("" for the
// default TCP, UDP and ICMP).
type access struct {
	Src    string `json:"src"`
	Dst    string `json:"dst"`
	Ports  string `json:"ports"`
	Protos string `json:"protos,omitempty"`
}

func (a access) String() string {
	return fmt.Sprintf("%s -> %s:%s %s", a.Src, a.Dst, portsText(a.Ports), protosText(splitNonEmpty(a.Protos)))
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// nodeDiff is what changes for one node. Added and Removed are inbound
// access (who may now, or no longer, open connections to the node).
type nodeDiff struct {
	Added        []access `json:"added,omitempty"`
	Removed      []access `json:"removed,omitempty"`
	PeersAdded   []string `json:"peersAdded,omitempty"`
	PeersRemoved []string `json:"peersRemoved,omitempty"`
}

type compiledDiff struct {
	Nodes map[string]nodeDiff `json:"nodes"` // only nodes that change
}

// flatten lists n's filter as access entries, sorted and without repeats.
func flatten(n compiledNode) []access {
	var out []access
	for _, r := range n.Filter {
		protos := strings.Join(r.Protos, ",")
		for _, d := range r.Dst {
			for _, s := range r.Src {
				out = append(out, access{Src: s, Dst: d.Prefix, Ports: d.Ports, Protos: protos})
			}
		}
	}
	slices.SortFunc(out, compareAccess)
	return slices.Compact(out)
}

func compareAccess(a, b access) int {
	for _, c := range [][2]string{{a.Dst, b.Dst}, {a.Ports, b.Ports}, {a.Protos, b.Protos}, {a.Src, b.Src}} {
		if c := strings.Compare(c[0], c[1]); c != 0 {
			return c
		}
	}
	return 0
}

// minus returns the elements of sorted a not in sorted b.
func minus[T any](a, b []T, cmp func(T, T) int) []T {
	var out []T
	for _, x := range a {
		if _, found := slices.BinarySearchFunc(b, x, cmp); !found {
			out = append(out, x)
		}
	}
	return out
}

func diffCompiled(old, nw compiled) compiledDiff {
	d := compiledDiff{Nodes: map[string]nodeDiff{}}
	for _, name := range sortedNames(nw.Nodes) {
		o, n := old.Nodes[name], nw.Nodes[name]
		fo, fn := flatten(o), flatten(n)
		nd := nodeDiff{
			Added:        minus(fn, fo, compareAccess),
			Removed:      minus(fo, fn, compareAccess),
			PeersAdded:   minus(n.Peers, o.Peers, strings.Compare),
			PeersRemoved: minus(o.Peers, n.Peers, strings.Compare),
		}
		if nd.Added != nil || nd.Removed != nil || nd.PeersAdded != nil || nd.PeersRemoved != nil {
			d.Nodes[name] = nd
		}
	}
	return d
}

func compileDiff(c *command, oldPath, newPath, nodesPath string, now time.Time) error {
	old, err := compileFiles(oldPath, nodesPath, now)
	if err != nil {
		return err
	}
	nw, err := compileFiles(newPath, nodesPath, now)
	if err != nil {
		return err
	}
	d := diffCompiled(old, nw)
	if c.af.json {
		return cli.PrintJSON(c.out, d)
	}
	var b bytes.Buffer
	if len(d.Nodes) == 0 {
		fmt.Fprintf(&b, "no change: %s and %s give every node the same filter and peers\n", oldPath, newPath)
	}
	for _, name := range sortedNames(d.Nodes) {
		nd := d.Nodes[name]
		fmt.Fprintf(&b, "%s\n", name)
		for _, a := range nd.Added {
			fmt.Fprintf(&b, "  + %s\n", a)
		}
		for _, a := range nd.Removed {
			fmt.Fprintf(&b, "  - %s\n", a)
		}
		for _, p := range nd.PeersAdded {
			fmt.Fprintf(&b, "  + peer %s\n", p)
		}
		for _, p := range nd.PeersRemoved {
			fmt.Fprintf(&b, "  - peer %s\n", p)
		}
	}
	_, err = c.out.Write(b.Bytes())
	return err
}
