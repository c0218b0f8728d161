package oidctest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// Browser is a scripted web browser: a cookie jar, redirects followed as a
// browser follows them, forms filled in and posted. It stops before a
// redirect to a URL whose path is its stop path, so tests can inspect or
// replay that request (for a relying party: its OIDC callback).
type Browser struct {
	// Client is the browser's HTTP client (with the cookie jar).
	Client *http.Client
	t      testing.TB
	stopAt string
}

// NewBrowser returns a browser with an empty cookie jar that stops before
// redirects to stopAt (a URL path; empty: follow every redirect). Its idle
// connections are closed when t ends.
func NewBrowser(t testing.TB, stopAt string) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &Browser{t: t, stopAt: stopAt, Client: &http.Client{
		Jar: jar, Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if (stopAt != "" && req.URL.Path == stopAt) || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

// Page is a response as the browser saw it.
type Page struct {
	Status int
	Body   string
	// URL is where the response came from (after redirects); Location is
	// the target of an unfollowed redirect.
	URL      *url.URL
	Location string
}

// Get fetches u (following redirects up to the stop path) and returns the
// final response's status, body and, for a redirect, its target.
func (b *Browser) Get(u string) (status int, body, location string) {
	b.t.Helper()
	p := b.Open(u)
	return p.Status, p.Body, p.Location
}

// Open fetches u like Get and returns the whole page.
func (b *Browser) Open(u string) Page {
	b.t.Helper()
	resp, err := b.Client.Get(u)
	if err != nil {
		b.t.Fatalf("oidctest: GET %s: %v", u, err)
	}
	return b.page(resp)
}

// Read reads and closes resp and returns its status, body and redirect
// target.
func (b *Browser) Read(resp *http.Response) (status int, body, location string) {
	b.t.Helper()
	p := b.page(resp)
	return p.Status, p.Body, p.Location
}

func (b *Browser) page(resp *http.Response) Page {
	b.t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("oidctest: read %s: %v", resp.Request.URL, err)
	}
	p := Page{Status: resp.StatusCode, Body: string(body), URL: resp.Request.URL}
	if l, err := resp.Location(); err == nil {
		p.Location = l.String()
	}
	return p
}

// Submit fills the first form of p with fields (over the values the form
// already has) and posts it as the browser would.
func (b *Browser) Submit(p Page, fields map[string]string) Page {
	b.t.Helper()
	action, values, err := ParseForm(p.Body)
	if err != nil {
		b.t.Fatalf("oidctest: %s: %v", p.URL, err)
	}
	for k, v := range fields {
		values.Set(k, v)
	}
	target, err := p.URL.Parse(action)
	if err != nil {
		b.t.Fatalf("oidctest: form action %q: %v", action, err)
	}
	resp, err := b.Client.PostForm(target.String(), values)
	if err != nil {
		b.t.Fatalf("oidctest: post the form of %s: %v", p.URL, err)
	}
	return b.page(resp)
}

// SignIn opens loginURL, which must lead (through redirects) to the
// provider's login form, signs in there as username with Password, and
// returns the URL the provider then redirects the browser to, which must
// have the stop path (the relying party's callback). The callback itself
// is not fetched.
func (b *Browser) SignIn(loginURL, username string) string {
	b.t.Helper()
	form := b.Open(loginURL)
	if form.Status != http.StatusOK {
		b.t.Fatalf("oidctest: login page: status %d: %s", form.Status, form.Body)
	}
	p := b.Submit(form, map[string]string{"username": username, "password": Password})
	if b.stopAt == "" || !strings.Contains(p.Location, b.stopAt) {
		b.t.Fatalf("oidctest: after the login form: status %d, location %q (want a redirect to %s), body %s",
			p.Status, p.Location, b.stopAt, p.Body)
	}
	return p.Location
}

// Login runs a whole login (SignIn, then the callback) and returns the
// relying party's final page.
func (b *Browser) Login(loginURL, username string) (status int, body string) {
	b.t.Helper()
	status, body, _ = b.Get(b.SignIn(loginURL, username))
	return status, body
}

// ParseForm returns the action and the named input values of the first
// form in page.
func ParseForm(page string) (action string, fields url.Values, err error) {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return "", nil, err
	}
	form := find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "form" })
	if len(form) == 0 {
		return "", nil, fmt.Errorf("no form on the page: %s", page)
	}
	fields = url.Values{}
	for _, in := range find(form[0], func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "input" }) {
		if name := attr(in, "name"); name != "" {
			fields.Set(name, attr(in, "value"))
		}
	}
	return attr(form[0], "action"), fields, nil
}

// Links returns the targets of the links (a href) in page, in order.
func Links(page string) []string {
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range find(doc, func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == "a" }) {
		if h := attr(a, "href"); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// find returns the nodes under n (n included) that match, in document
// order.
func find(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}
