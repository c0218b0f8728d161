// Package choice offers a user several ways to sign in (for example the
// company's identity provider and a local break-glass account) behind one
// login.Login.
//
// Begin starts a login with every method and hands out one URL: a page
// that links to each method's own sign-in URL. Wait waits on all of them
// and returns the first user who signed in; the other logins are then
// abandoned. A refusal by one method does not end the login while another
// may still succeed.
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
	table *login.Table[[]string] // each login's method URLs, in Config.Methods order
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
	return &Chooser{cfg: cfg, table: login.NewTable[[]string](login.TableConfig{Timeout: cfg.Timeout,
		Max: cfg.MaxPending, MaxPerSource: cfg.MaxPerSource, Now: cfg.Now})}, nil
}

// Begin starts a login with every method for machine and returns the
// page that offers them. An earlier login of the same machine is
// superseded (the methods themselves supersede their own earlier logins).
func (c *Chooser) Begin(ctx context.Context, machine key.MachinePublic, source string) (string, error) {
	e, err := c.table.Begin(machine, source, nil)
	if err != nil {
		return "", err
	}
	urls := make([]string, len(c.cfg.Methods))
	for i, m := range c.cfg.Methods {
		u, err := m.Login.Begin(ctx, machine, source)
		if err != nil {
			c.table.Finish(e, store.User{}, err)
			return "", fmt.Errorf("%s: %w", m.Label, err)
		}
		urls[i] = u
	}
	_ = c.table.With(e.ID, func(x *login.Entry[[]string]) error { x.State = urls; return nil })
	return c.cfg.BaseURL + ChoosePath + e.ID, nil
}

// Wait blocks until the user signed in with one of the methods (returning
// that user), every method failed (returning the refusal of the first
// method, in Config.Methods order), or ctx ends.
func (c *Chooser) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	id, ok := strings.CutPrefix(loginURL, c.cfg.BaseURL+ChoosePath)
	var urls []string
	var e *login.Entry[[]string]
	err := c.table.With(id, func(x *login.Entry[[]string]) error {
		if !ok || x.Machine != machine || x.Finished() || x.State == nil {
			return ErrUnknownLogin
		}
		urls, e = x.State, x
		return nil
	})
	if err != nil {
		return store.User{}, ErrUnknownLogin
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		method int
		user   store.User
		err    error
	}
	results := make(chan result, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, err := c.cfg.Methods[i].Login.Wait(ctx, machine, u)
			results <- result{i, user, err}
		}()
	}
	defer wg.Wait()
	errs := make([]error, len(urls))
	for range urls {
		r := <-results
		if r.err == nil {
			cancel()
			c.done(e, machine, r.user, nil)
			return r.user, nil
		}
		errs[r.method] = r.err
	}
	if ctx.Err() != nil {
		return store.User{}, context.Cause(ctx)
	}
	// Every method failed: report the first refusal in the order the
	// methods are shown (results arrive in no particular order), a
	// cancellation only if nothing else.
	var first error
	for _, err := range errs {
		if first == nil || (errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled)) {
			first = err
		}
	}
	c.done(e, machine, store.User{}, first)
	return store.User{}, first
}

// done ends the login e with its outcome and forgets it.
func (c *Chooser) done(e *login.Entry[[]string], machine key.MachinePublic, u store.User, err error) {
	c.table.Finish(e, u, err)
	_, _ = c.table.Wait(context.Background(), machine, e.ID)
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
		_ = c.table.With(id, func(e *login.Entry[[]string]) error {
			if !ok || e.Finished() {
				return nil
			}
			for i, m := range c.cfg.Methods {
				if i < len(e.State) {
					links = append(links, link{Label: m.Label, URL: template.URL(e.State[i])})
				}
			}
			return nil
		})
		if links == nil {
			w.WriteHeader(http.StatusNotFound)
			_ = page.Execute(w, pageData{Message: ErrUnknownLogin.Error()})
			return
		}
		_ = page.Execute(w, pageData{Links: links})
	})
}

type link struct {
	Label string
	URL   template.URL
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
{{range .Links}}<a href="{{.URL}}">{{.Label}}</a>{{end}}
</body></html>
`))
