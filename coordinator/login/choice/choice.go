// Package choice offers a user several ways to sign in (for example the
// company's identity provider and a local break-glass account) behind one
// login.Login.
//
// Begin starts a login with every method and hands out one URL: a page
// that links to each method's own sign-in URL. The methods' logins share
// one outcome (login.Shared): the first method to finish — a sign-in, or
// a final refusal or failure — ends the login, Wait returns that outcome
// at once, and every other method's link then says the sign-in is over
// and signs nobody in. What a method does not count as final (a mistyped
// local password) leaves the login open.
//
// The page URL is a bearer secret until the login ends (it leads to the
// methods' URLs, which are), so it is never logged. The package starts no
// goroutines of its own except inside Wait, which joins them before it
// returns.
package choice

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/login"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// ChoosePath, followed by a login ID, is the page Begin hands out.
const ChoosePath = "/login/choose/"

// Errors returned by Begin and Wait.
var (
	ErrUnknownLogin  = login.ErrUnknownLogin
	ErrTooManyLogins = login.ErrTooManyLogins
)

// Method is one way to sign in.
type Method struct {
	// Label is what the page shows, e.g. "Sign in with Okta".
	Label string
	// Login runs the method.
	Login login.Login
}

// Config configures a Chooser.
type Config struct {
	// BaseURL is the coordinator's public URL; Begin returns BaseURL +
	// ChoosePath + an ID. Required.
	BaseURL string
	// Methods offered, in the order shown; at least one.
	Methods []Method
	// Timeout, MaxPending and MaxPerSource bound the logins in progress
	// (see login.TableConfig). The methods time out on their own as well.
	Timeout      time.Duration
	MaxPending   int
	MaxPerSource int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Chooser is a login.Login that offers several methods. Its methods are
// safe for concurrent use.
type Chooser struct {
	cfg   Config
	table *login.Table[state]
}

// state is a login's method URLs (in Config.Methods order) and the
// outcome its methods share.
type state struct {
	urls   []string
	shared *login.Shared
	member int // the chooser's own member number in shared
}

// New checks cfg and returns a Chooser.
func New(cfg Config) (*Chooser, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("login choice: base URL required")
	}
	if len(cfg.Methods) == 0 {
		return nil, errors.New("login choice: at least one sign-in method required")
	}
	for i, m := range cfg.Methods {
		if m.Login == nil || m.Label == "" {
			return nil, fmt.Errorf("login choice: method %d needs a label and a login", i)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Chooser{cfg: cfg, table: login.NewTable[state](login.TableConfig{Timeout: cfg.Timeout,
		Max: cfg.MaxPending, MaxPerSource: cfg.MaxPerSource, Now: cfg.Now})}, nil
}

// Begin starts a login with every method for machine and returns the
// page that offers them. An earlier login of the same machine is
// superseded (the methods themselves supersede their own earlier logins).
// Methods that implement login.Joiner share the login's outcome.
func (c *Chooser) Begin(ctx context.Context, machine key.MachinePublic, source string) (string, error) {
	return c.BeginShared(ctx, machine, source, nil)
}

// BeginShared is Begin with the outcome the methods share held by s
// (login.Joiner), e.g. one from login.NewConsoleShared for a sign-in to
// the web console; a nil s is a fresh one.
func (c *Chooser) BeginShared(ctx context.Context, machine key.MachinePublic, source string, shared *login.Shared) (string, error) {
	if shared == nil {
		shared = login.NewShared()
	}
	e, err := c.table.Begin(machine, source, state{shared: shared})
	if err != nil {
		return "", err
	}
	urls := make([]string, len(c.cfg.Methods)) // "": the method is unavailable
	var unavailable error
	for i, m := range c.cfg.Methods {
		var u string
		if j, ok := m.Login.(login.Joiner); ok {
			u, err = j.BeginShared(ctx, machine, source, shared)
		} else {
			u, err = m.Login.Begin(ctx, machine, source)
		}
		switch {
		case errors.Is(err, login.ErrProviderUnavailable):
			// Offered as unavailable: the other methods still work (a
			// break-glass account while the provider is down).
			unavailable = err
			continue
		case err != nil:
			shared.Settle(shared.Join(nil)) // ends the methods begun so far
			c.table.Finish(e, store.User{}, err)
			return "", fmt.Errorf("%s: %w", m.Label, err)
		}
		urls[i] = u
	}
	if !slices.ContainsFunc(urls, func(u string) bool { return u != "" }) {
		c.table.Finish(e, store.User{}, unavailable)
		return "", unavailable
	}
	member := shared.Join(nil)
	_ = c.table.With(e.ID, func(x *login.Entry[state]) error {
		x.State.urls, x.State.member = urls, member
		return nil
	})
	return c.cfg.BaseURL + ChoosePath + e.ID, nil
}

// Wait blocks until one of the methods finished the login — the user
// signed in (returning that user), or a method refused or failed it for
// good (returning its error) — or ctx ends. The login is then over for
// every method.
func (c *Chooser) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	id, ok := strings.CutPrefix(loginURL, c.cfg.BaseURL+ChoosePath)
	var st state
	var e *login.Entry[state]
	err := c.table.With(id, func(x *login.Entry[state]) error {
		if !ok || x.Machine != machine || x.Finished() || x.State.urls == nil {
			return ErrUnknownLogin
		}
		st, e = x.State, x
		return nil
	})
	if err != nil {
		return store.User{}, ErrUnknownLogin
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		user store.User
		err  error
	}
	results := make(chan result, len(st.urls))
	var wg sync.WaitGroup
	waiting := 0
	for i, u := range st.urls {
		if u == "" {
			continue
		}
		waiting++
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, err := c.cfg.Methods[i].Login.Wait(ctx, machine, u)
			results <- result{user, err}
		}()
	}
	defer wg.Wait()
	for range waiting {
		r := <-results
		switch {
		case ctx.Err() != nil:
			// ctx ended: the login stays open for another Wait.
			return store.User{}, context.Cause(ctx)
		case errors.Is(r.err, login.ErrLoginOver):
			// Another method settled the login; its own outcome follows.
			continue
		}
		cancel()
		c.done(e, st, r.user, r.err)
		return r.user, r.err
	}
	// Only if every method said another had finished (which the winner
	// never does).
	c.done(e, st, store.User{}, login.ErrLoginOver)
	return store.User{}, login.ErrLoginOver
}

// done ends the login e with its outcome, ends every method's login (if
// the method that finished did not), and keeps e, finished, until it
// expires or the machine begins another, so that its page says so.
func (c *Chooser) done(e *login.Entry[state], st state, u store.User, err error) {
	st.shared.Settle(st.member)
	c.table.Finish(e, u, err)
}

// Close ends every login in progress.
func (c *Chooser) Close() { c.table.Close() }

// Handler serves the choice page at ChoosePath.
func (c *Chooser) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		login.SetPageHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, ChoosePath)
		var links []link
		finished := false
		_ = c.table.With(id, func(e *login.Entry[state]) error {
			if !ok {
				return nil
			}
			if e.Finished() {
				finished = true
				return nil
			}
			for i, m := range c.cfg.Methods {
				if i < len(e.State.urls) {
					l := link{Label: m.Label, URL: template.URL(e.State.urls[i])}
					if e.State.urls[i] == "" {
						l.Note = "unavailable: the identity provider cannot be reached right now"
					}
					links = append(links, l)
				}
			}
			return nil
		})
		switch {
		case finished:
			w.WriteHeader(http.StatusGone)
			_ = page.Execute(w, pageData{Message: msgFinished})
		case links == nil:
			w.WriteHeader(http.StatusNotFound)
			_ = page.Execute(w, pageData{Message: ErrUnknownLogin.Error()})
		default:
			_ = page.Execute(w, pageData{Links: links})
		}
	})
}

// msgFinished is the page of a login that is over.
const msgFinished = "This sign-in has already finished. Run 'warren up' on the device again if it is not connected."

type link struct {
	Label string
	URL   template.URL // "" when Note says why the method is unavailable
	Note  string
}

type pageData struct {
	Links   []link
	Message string
}

var page = template.Must(template.New("choose").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to Warren</title>
<style>body{font-family:sans-serif;max-width:30em;margin:4em auto}a{display:block;margin:1em 0;padding:.8em;border:1px solid #888;border-radius:.4em;text-decoration:none}</style>
</head><body><h1>Sign in to Warren</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{range .Links}}{{if .URL}}<a href="{{.URL}}">{{.Label}}</a>{{else}}<p>{{.Label}}: {{.Note}}</p>{{end}}{{end}}
</body></html>
`))
