package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/aymanbagabas/go-udiff"

	"github.com/warrenmesh/warren/coordinator/netmap"
	"github.com/warrenmesh/warren/internal/policy"
)

// The policy pages (admins): the editor, which validates, runs the file's
// tests, previews the change against the policy in force and saves it
// through policyfile.Manager.Apply (what `warren-coordinator policy
// apply` and the admin API call), the history of versions with their
// diffs (policyhistory.go), and the explain box (policyexplain.go).
// Nothing here decides whether a file is valid: policy.Parse does.

func (s *Server) policyRoutes() {
	s.handle("GET "+Prefix+"policy", roleAdmin, s.policyPage)
	s.handle("POST "+Prefix+"policy", roleAdmin, s.policyForm)
	s.handle("POST "+Prefix+"policy/validate", roleAdmin, s.policyValidate)
	s.handle("GET "+Prefix+"policy/history", roleAdmin, s.policyHistory)
	s.handle("GET "+Prefix+"policy/history/{id}", roleAdmin, s.policyVersion)
	s.handle("GET "+Prefix+"policy/explain", roleAdmin, s.policyExplain)
}

// tooLarge is what a form past maxFormBytes is told (a policy draft
// can be larger: the file's own limit is policy.MaxSize).
const tooLarge = "The console takes forms up to 1 MiB; apply a larger policy file with `warren-coordinator policy apply`."

// diagnostic is one problem in a draft, for the page and for the
// editor's lint (Line and Col from 1; 0 when the problem has no place).
type diagnostic struct {
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
	Warning bool   `json:"warning,omitempty"`
}

// check is what validating a draft found.
type check struct {
	OK          bool         `json:"ok"`
	Diagnostics []diagnostic `json:"diagnostics"`
	Rules       int          `json:"rules"`
	Tests       int          `json:"tests"` // tests entries, all passing when OK
	SSHTests    int          `json:"sshTests"`
	p           *policy.Policy
}

// validate parses src as policy.Parse does for every apply (which also
// runs its tests).
func validate(src []byte) check {
	c := check{Diagnostics: []diagnostic{}}
	p, err := policy.Parse(src)
	if err != nil {
		var es policy.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				c.Diagnostics = append(c.Diagnostics, diagnostic{Line: e.Line, Col: e.Col, Message: e.Message, Hint: e.Hint})
			}
		} else {
			c.Diagnostics = append(c.Diagnostics, diagnostic{Message: err.Error()})
		}
		return c
	}
	for _, w := range p.Warnings() {
		c.Diagnostics = append(c.Diagnostics, diagnostic{Line: w.Line, Col: w.Col, Message: w.Message, Hint: w.Hint, Warning: true})
	}
	c.OK, c.p = true, p
	c.Rules, c.Tests, c.SSHTests = p.RuleCount(), p.TestCount(), p.SSHTestCount()
	return c
}

// policyView is the editor page's data.
type policyView struct {
	Source   string // the draft (or what is in force)
	InForce  string // hash of the policy in force
	Version  int64
	Author   string
	Applied  string
	Rejected string // the file's newest refused edit, if any
	Action   string // what was asked: validate, tests, preview, save
	Check    *check
	Diff     []diffLine            // preview: unified diff, in force -> draft
	Changes  []netmap.PolicyChange // preview: nodes whose access changes
	Saved    bool
	SaveErr  string
}

func (s *Server) policyViewOf(src string) policyView {
	st := s.cfg.Policy.Status()
	v := policyView{Source: src, InForce: st.Hash, Version: st.Version, Author: st.Author, Applied: st.Applied.UTC().Format("2006-01-02 15:04:05 UTC")}
	if st.Rejected != nil {
		v.Rejected = st.Rejected.Error
	}
	return v
}

func (s *Server) policyPage(w http.ResponseWriter, r *http.Request, p *page) {
	v := s.policyViewOf(s.cfg.Policy.Status().Source)
	v.Saved = r.URL.Query().Get("saved") == "1"
	s.render(w, p, "policy", "Policy", v)
}

// policyForm handles the editor's buttons without JavaScript: the draft
// comes back with what the button found.
func (s *Server) policyForm(w http.ResponseWriter, r *http.Request, p *page) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	src := strings.ReplaceAll(r.PostFormValue("source"), "\r\n", "\n") // browsers post CRLF
	v := s.policyViewOf(src)
	v.Action = r.PostFormValue("action")
	c := validate([]byte(src))
	v.Check = &c
	switch v.Action {
	case "validate", "tests":
	case "preview":
		if d := unifiedDiff(s.cfg.Policy.Status().Source, src); d != "" {
			v.Diff = diffLines(d)
		}
		if c.OK {
			v.Changes = s.cfg.Engine.PreviewPolicy(c.p)
		}
	case "save":
		if !c.OK {
			v.SaveErr = "the policy has errors and was not saved; the policy in force is unchanged"
			break
		}
		if _, err := s.cfg.Policy.Apply(r.Context(), p.Actor.Name, []byte(src)); err != nil {
			s.log.Warn("console: policy apply", "user", p.User.Name, "err", err)
			v.SaveErr = "not saved: " + err.Error()
			break
		}
		http.Redirect(w, r, Prefix+"policy?saved=1", http.StatusSeeOther)
		return
	default:
		http.Error(w, "unknown action", http.StatusBadRequest)
		return
	}
	if v.SaveErr != "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	s.render(w, p, "policy", "Policy", v)
}

// policyValidate answers the editor's script: the draft in the body, the
// diagnostics as JSON.
func (s *Server) policyValidate(w http.ResponseWriter, r *http.Request, p *page) {
	var req struct {
		Source string `json:"source"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, tooLarge, http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "want a JSON body with the draft in \"source\"", http.StatusBadRequest)
		return
	}
	c := validate([]byte(req.Source))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c)
}

// unifiedDiff is the change from the policy in force to the draft ("" when
// they are the same).
func unifiedDiff(old, nw string) string {
	if old == nw {
		return ""
	}
	return udiff.Unified("in force", "draft", old, nw)
}
