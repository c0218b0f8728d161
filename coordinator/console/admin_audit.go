package console

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/warrenmesh/warren/coordinator/api"
	"github.com/warrenmesh/warren/coordinator/store"
)

// This file is the audit log page: the store's audit query (what the
// admin API's GET /api/v1/audit and `warren-coordinator audit` read) with
// filters on the actor, the action (exact, or a prefix ending in "." or
// "*"), the target, the outcome and a start time, newest first, a page
// at a time.

// auditPageSize is how many events one page of the audit log shows.
const auditPageSize = 50

// auditScanBatch and auditScanMax bound the events read to fill one page
// when filtering by an action prefix (the store matches actions
// exactly): a page scans at most auditScanMax events.
const (
	auditScanBatch = 500
	auditScanMax   = 20 * auditScanBatch
)

// auditCursor is where a page of the audit log starts: just after the
// event with this time and ID (zero: at the newest). The store orders
// events by time, then ID, both descending.
type auditCursor struct {
	Time time.Time
	ID   int64
}

func (c auditCursor) String() string {
	if c.Time.IsZero() {
		return ""
	}
	return strconv.FormatInt(c.Time.UnixNano(), 10) + "." + strconv.FormatInt(c.ID, 10)
}

func parseAuditCursor(v string) (auditCursor, error) {
	if v == "" {
		return auditCursor{}, nil
	}
	ns, id, ok := strings.Cut(v, ".")
	t, err1 := strconv.ParseInt(ns, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || t <= 0 || n <= 0 {
		return auditCursor{}, fmt.Errorf("%w: the page cursor %q is not one the console wrote", errAdminForm, v)
	}
	return auditCursor{Time: time.Unix(0, t), ID: n}, nil
}

// after reports whether e comes after c in the log's order (is older).
func (c auditCursor) after(e store.AuditEvent) bool {
	if c.Time.IsZero() {
		return true
	}
	return e.Time.Before(c.Time) || (e.Time.Equal(c.Time) && e.ID < c.ID)
}

// auditPage returns up to n events f selects, whose action starts with
// prefix, after cursor, and the cursor of the next page (zero: this was
// the last).
func (s *Server) auditPage(ctx context.Context, f store.AuditFilter, prefix string, cursor auditCursor, n int) ([]store.AuditEvent, auditCursor, error) {
	var out []store.AuditEvent
	for scanned := 0; scanned < auditScanMax; {
		f.Limit = auditScanBatch
		if !cursor.Time.IsZero() {
			f.Until = cursor.Time // inclusive: events of the same instant are skipped by ID below
		}
		evs, err := s.cfg.Store.ListAudit(ctx, f)
		if err != nil {
			return nil, auditCursor{}, err
		}
		scanned += len(evs)
		for _, e := range evs {
			if !cursor.after(e) {
				continue
			}
			cursor = auditCursor{Time: e.Time, ID: e.ID}
			if !strings.HasPrefix(e.Action, prefix) {
				continue
			}
			out = append(out, e)
			if len(out) == n {
				return out, cursor, nil
			}
		}
		if len(evs) < auditScanBatch {
			return out, auditCursor{}, nil
		}
	}
	return out, cursor, nil // scanned enough for one page: the next goes on
}

type auditData struct {
	Actor, Action, Target, Outcome, Since string
	Events                                []store.AuditEvent
	Next                                  string // address of the next page, "" on the last
}

func (s *Server) auditRoutes() {
	s.handle("GET "+Prefix+"audit", roleAdmin, func(w http.ResponseWriter, r *http.Request, p *page) {
		q := r.URL.Query()
		d := auditData{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Outcome: q.Get("outcome"), Since: q.Get("since")}
		f := store.AuditFilter{Actor: d.Actor, Target: d.Target, Outcome: d.Outcome}
		prefix := ""
		switch {
		case strings.HasSuffix(d.Action, "*"):
			prefix = strings.TrimSuffix(d.Action, "*")
		case strings.HasSuffix(d.Action, "."):
			prefix = d.Action
		default:
			f.Action = d.Action
		}
		var err error
		if d.Since != "" {
			f.Since, err = sinceTime(d.Since, s.cfg.Now())
		}
		cursor, cerr := parseAuditCursor(q.Get("after"))
		if err == nil {
			err = cerr
		}
		var next auditCursor
		if err == nil {
			d.Events, next, err = s.auditPage(r.Context(), f, prefix, cursor, auditPageSize)
		}
		if err != nil {
			s.adminFail(w, r, p, err)
			return
		}
		if !next.Time.IsZero() {
			v := url.Values{}
			for k, val := range map[string]string{"actor": d.Actor, "action": d.Action, "target": d.Target, "outcome": d.Outcome, "since": d.Since} {
				if val != "" {
					v.Set(k, val)
				}
			}
			v.Set("after", next.String())
			d.Next = Prefix + "audit?" + v.Encode()
		}
		s.render(w, p, "admin_audit", "Audit log", d)
	})
}

// sinceTime reads the "since" filter as the API and the CLI take it
// (api.ParseWhen).
func sinceTime(v string, now time.Time) (time.Time, error) {
	t, err := api.ParseWhen(v, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: since: %w", errAdminForm, err)
	}
	return t, nil
}
