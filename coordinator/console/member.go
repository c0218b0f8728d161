package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/access"
	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/policy"
	"github.com/warrenmesh/warren/internal/wire"
)

// This file holds the pages every signed-in user gets (admins see their
// own too): the home page, their own devices, what they can reach, their
// access requests. Every read and change goes through the registry and
// the access service with the person's own actor, so a member sees only
// what the CLI and the API would show them: their own devices.

func (s *Server) memberRoutes() {
	s.handle("GET "+Prefix+"{$}", roleMember, s.serveHome)
	s.handle("GET "+Prefix+"me/devices", roleMember, s.serveDevices)
	s.handle("GET "+Prefix+"me/reach", roleMember, s.serveReach)
	s.handle("GET "+Prefix+"me/access", roleMember, s.serveMyAccess)
	s.handle("POST "+Prefix+"me/access", roleMember, s.serveRequestAccess)
	s.handle("POST "+Prefix+"me/access/{id}/{action}", roleMember, s.serveDecideAccess)
}

// myNodes returns the user's own devices (not tagged ones, which belong
// to their tags), through the registry with the person's actor.
func (s *Server) myNodes(r *http.Request, p *page) ([]registry.NodeInfo, error) {
	all, err := s.cfg.Registry.ListNodes(r.Context(), p.Actor)
	if err != nil {
		return nil, err
	}
	var out []registry.NodeInfo
	for _, n := range all {
		if n.UserID == p.User.ID && len(n.Tags) == 0 {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b registry.NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// fail renders a page saying the coordinator could not do something.
func (s *Server) fail(w http.ResponseWriter, p *page, what string, err error) {
	s.log.Error("console: "+what, "err", err)
	w.WriteHeader(http.StatusServiceUnavailable)
	s.renderStatus(w, p, http.StatusServiceUnavailable, "Unavailable", "The coordinator could not "+what+"; try again shortly.")
}

// homeData is the home page: a summary with links.
type homeData struct {
	Devices, Online, Findings int
	Pending                   int // access requests of the user still pending
}

func (s *Server) serveHome(w http.ResponseWriter, r *http.Request, p *page) {
	nodes, err := s.myNodes(r, p)
	if err != nil {
		s.fail(w, p, "list your devices", err)
		return
	}
	d := homeData{Devices: len(nodes)}
	for _, n := range nodes {
		if n.Online {
			d.Online++
		}
		if ps := s.cfg.Engine.PostureStatus(wire.NodeID(n.ID)); ps != nil {
			d.Findings += len(ps.Denials) + len(ps.MFA)
		}
	}
	if s.cfg.Access != nil {
		if rs, err := s.cfg.Access.List(r.Context(), access.Caller{Actor: p.Actor}, false); err == nil {
			for _, ar := range rs {
				if ar.User == p.User.Name && ar.State == wire.AccessPending {
					d.Pending++
				}
			}
		}
	}
	s.render(w, p, "home", "Warren", d)
}

// device is one of the user's devices as "My devices" shows it.
type device struct {
	registry.NodeInfo
	Addresses []netip.Addr
	OS        string // "linux 6.8", from the posture the node reports
	Path      string
	Findings  []finding
}

// finding is a rule a device fails only because of its posture or a
// stale MFA sign-in, with what to do about it.
type finding struct {
	Destination, Reason, Fix string
}

func (s *Server) serveDevices(w http.ResponseWriter, r *http.Request, p *page) {
	nodes, err := s.myNodes(r, p)
	if err != nil {
		s.fail(w, p, "list your devices", err)
		return
	}
	out := make([]device, 0, len(nodes))
	for _, n := range nodes {
		d := device{NodeInfo: n, Path: pathOf(n)}
		for _, a := range []netip.Addr{n.IPv4, n.IPv6} {
			if a.IsValid() {
				d.Addresses = append(d.Addresses, a)
			}
		}
		if ps := s.cfg.Engine.PostureStatus(wire.NodeID(n.ID)); ps != nil {
			d.OS = osOf(ps.Attrs)
			for _, den := range ps.Denials {
				d.Findings = append(d.Findings, finding{Destination: den.Destination, Reason: den.Reason, Fix: postureFix(den)})
			}
			for _, m := range ps.MFA {
				d.Findings = append(d.Findings, finding{Destination: m.Destination,
					Reason: fmt.Sprintf("your last sign-in with a second factor is older than %s (%s)", m.MaxAge, m.Rule),
					Fix:    "Sign in again with your second factor: run `warren login --mfa` on this device."})
			}
		}
		out = append(out, d)
	}
	s.render(w, p, "devices", "My devices", out)
}

// pathOf says how the coordinator last saw the device connect: the
// coordinator knows the endpoints it reported and its home relay, not the
// path each peer took.
func pathOf(n registry.NodeInfo) string {
	switch {
	case !n.Online:
		return "offline"
	case len(n.Endpoints) > 0 && n.HomeRelay > 0:
		return fmt.Sprintf("direct where possible (%d endpoints), relay region %d as fallback", len(n.Endpoints), n.HomeRelay)
	case len(n.Endpoints) > 0:
		return fmt.Sprintf("direct (%d endpoints)", len(n.Endpoints))
	case n.HomeRelay > 0:
		return fmt.Sprintf("through relay region %d", n.HomeRelay)
	}
	return "unknown"
}

// osOf is the OS and its version as the node reported them.
func osOf(attrs []wire.PostureAttr) string {
	var os, ver string
	for _, a := range attrs {
		switch a.Name {
		case "node:os":
			os = a.Value
		case "node:osVersion":
			ver = a.Value
		}
	}
	return strings.TrimSpace(os + " " + ver)
}

// postureFix says what a person can do about a failed posture condition.
func postureFix(d wire.PostureDenial) string {
	switch attr, _, _ := strings.Cut(d.Reason, " "); attr {
	case "node:diskEncrypted":
		return "Turn on disk encryption (FileVault on macOS, BitLocker on Windows, LUKS on Linux), then wait for the next posture report."
	case "node:firewall":
		return "Turn on the system firewall."
	case "node:secureBoot":
		return "Turn on Secure Boot in the firmware settings."
	case "node:screenLock":
		return "Turn on the automatic screen lock."
	case "node:autoUpdate":
		return "Turn on automatic updates."
	case "node:os", "node:osVersion", "node:kernelVersion":
		return "Update the operating system to a version the policy accepts."
	case "node:clientVersion":
		return "Update Warren on this device."
	case "node:managed":
		return "Enrol this device in your organisation's device management."
	}
	if strings.HasPrefix(d.Reason, "custom:") {
		return "This attribute is set by your organisation's tools (" + d.Posture + "): ask an admin what it needs."
	}
	return "Ask an admin what " + d.Posture + " requires."
}

// reachDevice is what one of the user's devices may reach.
type reachDevice struct {
	Name    string
	Active  bool // in the mesh now (approved, key valid, owner enabled)
	Targets []reachTarget
}

// reachTarget is one rule letting the device reach a peer.
type reachTarget struct {
	Peer, Ports, Rule string
}

func (s *Server) serveReach(w http.ResponseWriter, r *http.Request, p *page) {
	nodes, err := s.myNodes(r, p)
	if err != nil {
		s.fail(w, p, "list your devices", err)
		return
	}
	pol := s.cfg.Policy.Current()
	grants := s.cfg.Engine.Grants()
	now := s.cfg.Now()
	out := make([]reachDevice, 0, len(nodes))
	for _, n := range nodes {
		rd := reachDevice{Name: n.Name}
		src, ok := s.cfg.Engine.PolicyNode(n.Name)
		rd.Active = ok && !n.Pending && !n.Expired
		for _, re := range s.cfg.Engine.Reachable(wire.NodeID(n.ID)) {
			var dst *policy.Node
			if pn, found := s.cfg.Engine.PolicyNode(re.PeerName); found && re.Ports[0].Prefix.Bits() == re.Ports[0].Prefix.Addr().BitLen() {
				dst = &pn // the peer's own address, not a route behind it
			}
			rd.Targets = append(rd.Targets, reachTarget{Peer: re.PeerName, Ports: portsOf(re),
				Rule: ruleText(pol, grants, src, ok, dst, re, now)})
		}
		out = append(out, rd)
	}
	s.render(w, p, "reach", "What I can reach", out)
}

// portsOf writes a filter rule's destinations for people.
func portsOf(re netmap.Reach) string {
	var parts []string
	for _, pr := range re.Ports {
		ports := fmt.Sprintf("%d-%d", pr.First, pr.Last)
		switch {
		case pr.First == 0 && pr.Last == 65535:
			ports = "*"
		case pr.First == pr.Last:
			ports = strconv.Itoa(int(pr.First))
		}
		parts = append(parts, pr.Prefix.String()+":"+ports)
	}
	if len(re.Protocols) > 0 {
		var ps []string
		for _, p := range re.Protocols {
			ps = append(ps, protoName(p))
		}
		return strings.Join(parts, ", ") + " (" + strings.Join(ps, ", ") + ")"
	}
	return strings.Join(parts, ", ")
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
	}
	return strconv.Itoa(p)
}

// ruleText names the rule that lets the device reach the peer, with its
// line and text when the policy's own explanation finds it.
func ruleText(pol *policy.Policy, grants []policy.Grant, src policy.Node, srcOK bool, dst *policy.Node, re netmap.Reach, now time.Time) string {
	if pol == nil || !srcOK || len(re.Ports) == 0 {
		return re.Rule
	}
	q := policy.Query{SrcNode: &src, Dst: re.Ports[0].Prefix.Addr().String(), Port: re.Ports[0].First, At: now, Grants: grants}
	if dst != nil {
		q.Dst, q.DstNode = "", dst
	}
	if len(re.Protocols) > 0 {
		q.Proto = strconv.Itoa(re.Protocols[0])
	}
	d, err := pol.Explain(q)
	if err != nil || !d.Allowed {
		return re.Rule
	}
	if d.Grant != nil {
		return fmt.Sprintf("just-in-time grant %s until %s", d.Grant.ID, d.Grant.Until.UTC().Format(time.RFC3339))
	}
	return d.Rule.String() + ": " + d.Rule.Text
}

// memberAccessData is the "My access requests" page.
type memberAccessData struct {
	Enabled  bool
	Mine     []wire.AccessRequest
	Approve  []wire.AccessRequest // pending requests this user may decide
	Devices  []registry.NodeInfo  // to request from
	Error    string
	Notice   string
	Defaults struct{ Node, Dst, Duration, Reason string }
}

func (s *Server) serveMyAccess(w http.ResponseWriter, r *http.Request, p *page) {
	s.renderAccess(w, r, p, http.StatusOK, memberAccessData{Notice: noticeOf(r)})
}

// noticeOf is the short confirmation a redirect after a change carries.
func noticeOf(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "requested":
		return "Request filed."
	case "cancel":
		return "Request cancelled."
	case "approve":
		return "Request approved."
	case "deny":
		return "Request denied."
	}
	return ""
}

func (s *Server) renderAccess(w http.ResponseWriter, r *http.Request, p *page, code int, d memberAccessData) {
	d.Enabled = s.cfg.Access != nil
	if d.Enabled {
		nodes, err := s.myNodes(r, p)
		if err != nil {
			s.fail(w, p, "list your devices", err)
			return
		}
		d.Devices = nodes
		c := access.Caller{Actor: p.Actor}
		mine, err := s.cfg.Access.List(r.Context(), c, false)
		if err != nil {
			s.fail(w, p, "list your access requests", err)
			return
		}
		for _, ar := range mine {
			if ar.User == p.User.Name { // admins list everyone's here
				d.Mine = append(d.Mine, ar)
			}
		}
		if d.Approve, err = s.cfg.Access.List(r.Context(), c, true); err != nil {
			s.fail(w, p, "list the requests you may approve", err)
			return
		}
	}
	w.WriteHeader(code)
	s.render(w, p, "access", "My access requests", d)
}

// serveRequestAccess files a request for one of the user's devices: the
// access service acts for that device (as for a request from the device
// itself), after the console checked the device is the user's own.
func (s *Server) serveRequestAccess(w http.ResponseWriter, r *http.Request, p *page) {
	f, msg := parseRequestForm(r.PostFormValue("node"), r.PostFormValue("dst"), r.PostFormValue("duration"), r.PostFormValue("reason"))
	d := memberAccessData{}
	d.Defaults.Node, d.Defaults.Dst = r.PostFormValue("node"), r.PostFormValue("dst")
	d.Defaults.Duration, d.Defaults.Reason = r.PostFormValue("duration"), r.PostFormValue("reason")
	if msg != "" {
		d.Error = msg
		s.renderAccess(w, r, p, http.StatusBadRequest, d)
		return
	}
	if s.cfg.Access == nil {
		s.renderAccess(w, r, p, http.StatusNotFound, d)
		return
	}
	nodes, err := s.myNodes(r, p)
	if err != nil {
		s.fail(w, p, "list your devices", err)
		return
	}
	if !slices.ContainsFunc(nodes, func(n registry.NodeInfo) bool { return n.ID == f.node }) {
		d.Error = "Choose one of your own devices."
		s.renderAccess(w, r, p, http.StatusForbidden, d)
		return
	}
	if _, err := s.cfg.Access.Request(r.Context(), access.Caller{Node: f.node}, f.dst, f.duration, f.reason); err != nil {
		d.Error = accessError(err)
		s.renderAccess(w, r, p, http.StatusForbidden, d)
		return
	}
	http.Redirect(w, r, Prefix+"me/access?done=requested", http.StatusSeeOther)
}

// requestForm is a parsed access request form.
type requestForm struct {
	node     store.NodeID
	dst      string
	duration time.Duration
	reason   string
}

// parseRequestForm checks the request form's fields, returning what is
// wrong in words for the page ("" when nothing); the access service
// checks the rest (lengths, the policy).
func parseRequestForm(node, dst, duration, reason string) (requestForm, string) {
	id, err := strconv.ParseInt(strings.TrimSpace(node), 10, 64)
	if err != nil || id <= 0 {
		return requestForm{}, "Choose one of your devices."
	}
	d, err := time.ParseDuration(strings.TrimSpace(duration))
	if err != nil || d <= 0 || d > 366*24*time.Hour {
		return requestForm{}, "Give a duration such as 30m or 2h."
	}
	if strings.TrimSpace(dst) == "" {
		return requestForm{}, "Give a destination such as tag:prod-db:5432."
	}
	return requestForm{node: store.NodeID(id), dst: dst, duration: d, reason: reason}, ""
}

// accessError is the service's refusal in words for the page.
func accessError(err error) string {
	var ae *access.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return "The request could not be filed; try again shortly."
}

// serveDecideAccess cancels the user's own request, or approves or
// denies one they may decide (the access service checks which).
func (s *Server) serveDecideAccess(w http.ResponseWriter, r *http.Request, p *page) {
	if s.cfg.Access == nil {
		http.NotFound(w, r)
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	c := access.Caller{Actor: p.Actor}
	var err error
	switch action {
	case "cancel":
		_, err = s.cfg.Access.Cancel(r.Context(), c, id)
	case "approve":
		_, err = s.cfg.Access.Approve(r.Context(), c, id, 0)
	case "deny":
		_, err = s.cfg.Access.Deny(r.Context(), c, id, strings.TrimSpace(r.PostFormValue("note")))
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		s.renderAccess(w, r, p, http.StatusForbidden, memberAccessData{Error: accessError(err)})
		return
	}
	http.Redirect(w, r, Prefix+"me/access?done="+action, http.StatusSeeOther)
}
