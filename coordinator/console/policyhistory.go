package console

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/coordinator/store"
)

// The policy's history (every accepted version, who applied it and when,
// and its diff against its predecessor, as the store keeps them) and the
// explain box.

// historyLimit is how many versions the history lists.
const historyLimit = 100

func (s *Server) policyHistory(w http.ResponseWriter, r *http.Request, p *page) {
	versions, err := s.cfg.Store.ListPolicies(r.Context(), historyLimit)
	if err != nil {
		s.policyStoreError(w, p, err)
		return
	}
	s.render(w, p, "policyhistory", "Policy history", versions)
}

// versionView is one version and its diff, split into lines for colour.
type versionView struct {
	V     store.PolicyVersion
	Lines []diffLine
}

type diffLine struct {
	Class, Text string
}

func (s *Server) policyVersion(w http.ResponseWriter, r *http.Request, p *page) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	v, err := s.findPolicy(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		s.renderStatus(w, p, http.StatusNotFound, "Not found", "no such policy version among the newest "+strconv.Itoa(historyLimit))
		return
	}
	if err != nil {
		s.policyStoreError(w, p, err)
		return
	}
	s.render(w, p, "policyversion", "Policy version "+strconv.FormatInt(id, 10), versionView{V: v, Lines: diffLines(v.Diff)})
}

// findPolicy looks id up among the versions the history lists.
func (s *Server) findPolicy(ctx context.Context, id int64) (store.PolicyVersion, error) {
	versions, err := s.cfg.Store.ListPolicies(ctx, historyLimit)
	if err != nil {
		return store.PolicyVersion{}, err
	}
	for _, v := range versions {
		if v.ID == id {
			return v, nil
		}
	}
	return store.PolicyVersion{}, store.ErrNotFound
}

// diffLines classes each line of a unified diff for the stylesheet.
func diffLines(d string) []diffLine {
	var out []diffLine
	for _, l := range strings.Split(strings.TrimSuffix(d, "\n"), "\n") {
		c := ""
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
			c = "diff-file"
		case strings.HasPrefix(l, "@@"):
			c = "diff-hunk"
		case strings.HasPrefix(l, "+"):
			c = "diff-add"
		case strings.HasPrefix(l, "-"):
			c = "diff-del"
		}
		out = append(out, diffLine{Class: c, Text: l})
	}
	return out
}

// explainView is the explain box's question and answer.
type explainView struct {
	Src, Dst, Port, Proto string
	Answer                *api.ExplainResponse
	Err                   string
}

// policyExplain answers "can SRC reach DST:PORT, and by which rule" with
// the admin API's explain (a GET: it changes nothing).
func (s *Server) policyExplain(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	v := explainView{Src: q.Get("src"), Dst: q.Get("dst"), Port: q.Get("port"), Proto: q.Get("proto")}
	if v.Src != "" || v.Dst != "" {
		port, err := strconv.ParseUint(v.Port, 10, 16)
		if err != nil {
			v.Err = "the port is a number from 0 to 65535"
		} else {
			resp, err := api.Explain(r.Context(), s.cfg.Policy.Current(), s.cfg.Engine, s.cfg.Store,
				api.ExplainRequest{Src: v.Src, Dst: v.Dst, Port: uint16(port), Proto: v.Proto}, s.cfg.Now())
			switch {
			case errors.Is(err, registry.ErrBadRequest):
				v.Err = strings.TrimPrefix(err.Error(), registry.ErrBadRequest.Error()+": ")
			case err != nil:
				s.policyStoreError(w, p, err)
				return
			default:
				v.Answer = &resp
			}
		}
	}
	s.render(w, p, "policyexplain", "Explain", v)
}

// policyStoreError answers a failure to read the store.
func (s *Server) policyStoreError(w http.ResponseWriter, p *page, err error) {
	s.log.Error("console: store", "err", err)
	w.WriteHeader(http.StatusServiceUnavailable)
	s.renderStatus(w, p, http.StatusServiceUnavailable, "Unavailable", "the coordinator could not read its store; try again")
}
