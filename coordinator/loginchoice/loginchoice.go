// Package loginchoice offers a user several ways to sign in (for example
// the company's identity provider and a local break-glass account) behind
// one auth.Login.
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
package loginchoice

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/warrenmesh/warren/coordinator/auth"
	"github.com/warrenmesh/warren/coordinator/store"
	"github.com/warrenmesh/warren/internal/key"
)

// ChoosePath, followed by a login ID, is the page Begin hands out.
const ChoosePath = "/login/choose/"

// Defaults of Config.
const (
	DefaultTimeout    = 10 * time.Minute
	DefaultMaxPending = 1000
)

// Errors returned by Begin and Wait.
var (
	ErrUnknownLogin  = errors.New("unknown or expired login URL: run 'warren up' again to get a new one")
	ErrTooManyLogins = errors.New("too many logins in progress on this coordinator: try again in a few minutes")
)

// Method is one way to sign in.
type Method struct {
	// Label is what the page shows, e.g. "Sign in with Okta".
	Label string
	// Login runs the method.
	Login auth.Login
}

// Config configures a Chooser.
type Config struct {
	// BaseURL is the coordinator's public URL; Begin returns BaseURL +
	// ChoosePath + an ID. Required.
	BaseURL string
	// Methods offered, in the order shown; at least one.
	Methods []Method
	// Timeout is how long a login's page stays valid; default
	// DefaultTimeout. The methods time out on their own as well.
	Timeout time.Duration
	// MaxPending bounds the logins in progress; default DefaultMaxPending.
	MaxPending int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Chooser is an auth.Login that offers several methods. Its methods are
// safe for concurrent use.
type Chooser struct {
	cfg Config

	mu        sync.Mutex
	byID      map[string]*pending
	byURL     map[string]*pending
	byMachine map[key.MachinePublic]*pending
}

// pending is one login in progress.
type pending struct {
	id      string
	url     string
	machine key.MachinePublic
	urls    []string // each method's own URL, in Config.Methods order
	expires time.Time
}

// New checks cfg and returns a Chooser.
func New(cfg Config) (*Chooser, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("loginchoice: base URL required")
	}
	if len(cfg.Methods) == 0 {
		return nil, errors.New("loginchoice: at least one sign-in method required")
	}
	for i, m := range cfg.Methods {
		if m.Login == nil || m.Label == "" {
			return nil, fmt.Errorf("loginchoice: method %d needs a label and a login", i)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	return &Chooser{cfg: cfg, byID: map[string]*pending{}, byURL: map[string]*pending{},
		byMachine: map[key.MachinePublic]*pending{}}, nil
}

// Begin starts a login with every method for machine and returns the
// page that offers them. An earlier login of the same machine is
// forgotten (the methods themselves supersede their own earlier logins).
func (c *Chooser) Begin(ctx context.Context, machine key.MachinePublic) (string, error) {
	c.mu.Lock()
	c.sweepLocked(c.cfg.Now())
	if old := c.byMachine[machine]; old != nil {
		c.forgetLocked(old)
	}
	full := len(c.byID) >= c.cfg.MaxPending
	c.mu.Unlock()
	if full {
		return "", ErrTooManyLogins
	}
	urls := make([]string, len(c.cfg.Methods))
	for i, m := range c.cfg.Methods {
		u, err := m.Login.Begin(ctx, machine)
		if err != nil {
			return "", fmt.Errorf("%s: %w", m.Label, err)
		}
		urls[i] = u
	}
	id := rand.Text()
	p := &pending{id: id, url: c.cfg.BaseURL + ChoosePath + id, machine: machine, urls: urls,
		expires: c.cfg.Now().Add(c.cfg.Timeout)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.byMachine[machine]; old != nil {
		c.forgetLocked(old) // a concurrent Begin of the same machine
	}
	c.byID[id], c.byURL[p.url], c.byMachine[machine] = p, p, p
	return p.url, nil
}

// Wait blocks until the user signed in with one of the methods (returning
// that user), every method failed (returning the refusal of the first
// method, in Config.Methods order), or ctx ends.
func (c *Chooser) Wait(ctx context.Context, machine key.MachinePublic, loginURL string) (store.User, error) {
	c.mu.Lock()
	p := c.byURL[loginURL]
	if p == nil || p.machine != machine || !c.cfg.Now().Before(p.expires) {
		c.mu.Unlock()
		return store.User{}, ErrUnknownLogin
	}
	urls := p.urls
	c.mu.Unlock()

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
			c.mu.Lock()
			if c.byID[p.id] == p {
				c.forgetLocked(p)
			}
			c.mu.Unlock()
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
	return store.User{}, first
}

// Handler serves the choice page at ChoosePath.
func (c *Chooser) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.SetPageHeaders(w.Header())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		id, ok := strings.CutPrefix(r.URL.Path, ChoosePath)
		c.mu.Lock()
		p := c.byID[id]
		if p != nil && !c.cfg.Now().Before(p.expires) {
			p = nil
		}
		var links []link
		if ok && p != nil {
			for i, m := range c.cfg.Methods {
				links = append(links, link{Label: m.Label, URL: template.URL(p.urls[i])})
			}
		}
		c.mu.Unlock()
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

// forgetLocked drops p from every index.
func (c *Chooser) forgetLocked(p *pending) {
	delete(c.byID, p.id)
	delete(c.byURL, p.url)
	if c.byMachine[p.machine] == p {
		delete(c.byMachine, p.machine)
	}
}

// sweepLocked drops expired logins.
func (c *Chooser) sweepLocked(now time.Time) {
	for _, p := range c.byID {
		if !now.Before(p.expires) {
			c.forgetLocked(p)
		}
	}
}
