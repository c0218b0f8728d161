// Command convert writes the conformance cases of policy compile from
// capture files recorded against Tailscale's hosted control plane (the
// format of juanfont/headscale's hscontrol/policy/v2/testdata/*_results):
// for each capture, a directory with policy.hujson (the policy as sent),
// nodes.json (the topology, in policy compile's inventory format) and
// either want.json (each captured node's packet filter and peers, in
// policy compile's --json format) or rejected (Tailscale's error message).
//
// It lives under testdata so that the build and go vet ignore it. Run:
//
//	go run ./cmd/warren-coordinator/testdata/conformance/convert OUTDIR CAPTURE.hujson...
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tailscale/hujson"
)

type capture struct {
	TestID string `json:"test_id"`
	Error  bool   `json:"error"`
	Input  struct {
		FullPolicy json.RawMessage `json:"full_policy"` // a JSON string or object
		Code       int             `json:"api_response_code"`
		Body       struct {
			Message string `json:"message"`
		} `json:"api_response_body"`
	} `json:"input"`
	Topology struct {
		Users []struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"users"`
		Nodes map[string]struct {
			Tags   []string `json:"tags"`
			IPv4   string   `json:"ipv4"`
			IPv6   string   `json:"ipv6"`
			User   string   `json:"user"`
			Routes []string `json:"approved_routes"`
		} `json:"nodes"`
	} `json:"topology"`
	Captures map[string]struct {
		Matches []struct {
			IPProto []int `json:"IPProto"`
			Srcs    []string
			Dsts    []struct {
				Net   string
				Ports struct{ First, Last int }
			}
		} `json:"packet_filter_matches"`
		Netmap *struct {
			Peers []struct{ Name string }
		} `json:"netmap"`
	} `json:"captures"`
}

type node struct {
	Name      string   `json:"name"`
	User      string   `json:"user"`
	Tags      []string `json:"tags,omitempty"`
	Addresses []string `json:"addresses"`
	Routes    []string `json:"routes,omitempty"`
	ExitNode  bool     `json:"exitNode,omitempty"`
}

type rule struct {
	Src    []string `json:"src"`
	Dst    []dst    `json:"dst"`
	Protos []string `json:"protos,omitempty"`
}

type dst struct {
	Prefix string `json:"prefix"`
	Ports  string `json:"ports"`
}

type want struct {
	Filter []rule   `json:"filter"`
	Peers  []string `json:"peers"`
}

func protoName(p int) string {
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
	return fmt.Sprint(p)
}

func cidr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

func main() {
	out := os.Args[1]
	for _, f := range os.Args[2:] {
		if err := convert(out, f); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", f, err)
			os.Exit(1)
		}
	}
}

func convert(out, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if b, err = hujson.Standardize(b); err != nil {
		return err
	}
	var c capture
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	dir := filepath.Join(out, c.TestID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw := []byte(c.Input.FullPolicy)
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = []byte(s)
	}
	var pol bytes.Buffer
	if err := json.Indent(&pol, raw, "", "\t"); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	pol.WriteByte('\n')
	if err := os.WriteFile(filepath.Join(dir, "policy.hujson"), pol.Bytes(), 0o644); err != nil {
		return err
	}
	emails := map[string]string{}
	for _, u := range c.Topology.Users {
		emails[u.Name] = u.Email
	}
	var inv struct{ Nodes []node }
	for _, name := range sortedKeys(c.Topology.Nodes) {
		tn := c.Topology.Nodes[name]
		n := node{Name: name, Tags: tn.Tags, Routes: tn.Routes}
		if len(tn.Tags) == 0 {
			n.User = emails[tn.User]
		}
		for _, a := range []string{tn.IPv4, tn.IPv6} {
			if a != "" {
				n.Addresses = append(n.Addresses, cidr(a))
			}
		}
		n.ExitNode = slices.Contains(tn.Routes, "0.0.0.0/0") || slices.Contains(tn.Routes, "::/0")
		inv.Nodes = append(inv.Nodes, n)
	}
	var nb bytes.Buffer
	nb.WriteString("{\"nodes\": [\n")
	for i, n := range inv.Nodes {
		b, _ := json.Marshal(n)
		nb.Write(b)
		if i < len(inv.Nodes)-1 {
			nb.WriteByte(',')
		}
		nb.WriteByte('\n')
	}
	nb.WriteString("]}\n")
	if err := os.WriteFile(filepath.Join(dir, "nodes.json"), nb.Bytes(), 0o644); err != nil {
		return err
	}
	if c.Error || c.Input.Code != 200 {
		msg := c.Input.Body.Message
		if msg == "" {
			msg = fmt.Sprintf("rejected with HTTP status %d", c.Input.Code)
		}
		return os.WriteFile(filepath.Join(dir, "rejected"), []byte(msg+"\n"), 0o644)
	}
	w := struct {
		Nodes map[string]want `json:"nodes"`
	}{Nodes: map[string]want{}}
	for _, name := range sortedKeys(c.Captures) {
		cp := c.Captures[name]
		if cp.Netmap == nil {
			continue // not captured: nothing to compare
		}
		nw := want{Filter: []rule{}, Peers: []string{}}
		for _, m := range cp.Matches {
			if len(m.Dsts) == 0 {
				continue // a capability grant, not a packet filter
			}
			var r rule
			for _, s := range m.Srcs {
				r.Src = append(r.Src, cidr(s))
			}
			for _, d := range m.Dsts {
				r.Dst = append(r.Dst, dst{Prefix: cidr(d.Net), Ports: fmt.Sprintf("%d-%d", d.Ports.First, d.Ports.Last)})
			}
			ps := slices.Clone(m.IPProto)
			slices.Sort(ps)
			if !slices.Equal(ps, []int{1, 6, 17, 58}) {
				for _, p := range ps {
					r.Protos = append(r.Protos, protoName(p))
				}
			}
			nw.Filter = append(nw.Filter, r)
		}
		for _, p := range cp.Netmap.Peers {
			pn, _, _ := strings.Cut(p.Name, ".")
			if _, ok := c.Topology.Nodes[pn]; ok {
				nw.Peers = append(nw.Peers, pn)
			}
		}
		slices.Sort(nw.Peers)
		w.Nodes[name] = nw
	}
	// One node a line: compact, yet a change to one node's filter is a
	// one-line diff.
	var wb bytes.Buffer
	wb.WriteString("{\"nodes\": {\n")
	names := sortedKeys(w.Nodes)
	for i, name := range names {
		k, _ := json.Marshal(name)
		v, _ := json.Marshal(w.Nodes[name])
		wb.Write(k)
		wb.WriteString(": ")
		wb.Write(v)
		if i < len(names)-1 {
			wb.WriteByte(',')
		}
		wb.WriteByte('\n')
	}
	wb.WriteString("}}\n")
	return os.WriteFile(filepath.Join(dir, "want.json"), wb.Bytes(), 0o644)
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
