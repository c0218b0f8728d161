package testmesh

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/warrenmesh/warren/coordinator/login/local"
	"github.com/warrenmesh/warren/coordinator/login/oidc"
	"github.com/warrenmesh/warren/internal/tstest/oidctest"
	"github.com/warrenmesh/warren/node/controlclient"
	"github.com/warrenmesh/warren/node/localapi"
)

// choiceLinks returns the OIDC and the local link of the choice page at
// loginURL.
func choiceLinks(t *testing.T, m *Mesh, loginURL string) (oidcLink, localLink string) {
	t.Helper()
	status, page, _ := oidctest.NewBrowser(t, "").Get(loginURL)
	links := oidctest.Links(page)
	find := func(path string) string {
		i := slices.IndexFunc(links, func(l string) bool { return strings.HasPrefix(l, m.URL+path) })
		if i < 0 {
			t.Fatalf("choice page: %d, links %q: none to %s", status, links, path)
		}
		return links[i]
	}
	return find(oidc.StartPath), find(local.LoginPath)
}

// TestChoiceSSORefusalEndsUp: with OIDC and local users both enabled, a
// refusal by the provider's side ends `warren up` at once with the reason,
// instead of when the login times out (issue 12, defect 4).
func TestChoiceSSORefusalEndsUp(t *testing.T) {
	m := New(t, Options{Policy: idpGroupPolicy, LocalLogin: true,
		OIDC: &OIDCOptions{Users: idpUsers, AllowedDomains: []string{"example.com"}}})
	d := m.AddDaemon("eve-laptop")
	_, urls, err := d.Up(localapi.UpRequest{}, m.AsOIDCUser("eve"))
	if len(urls) != 1 || err == nil || !strings.Contains(err.Error(), "coordinator refused") || !strings.Contains(err.Error(), "evil.test") {
		t.Fatalf("warren up (sign-in URLs %q): %v, want the refusal naming the domain at once", urls, err)
	}
	if st := d.Status(context.Background()); st.State != localapi.StateError || !strings.Contains(st.Error, "evil.test") {
		t.Fatalf("status after the refusal: %+v", st)
	}
	// The local link of the same login is over too.
	if p := oidctest.NewBrowser(t, "").Open(urls[0]); p.Status != http.StatusGone ||
		!strings.Contains(p.Body, "already finished") {
		t.Fatalf("choice page after the refusal: %d %s", p.Status, p.Body)
	}
}

// TestChoiceOneLoginOneSuccess: once a choice login has finished, the
// other method's link says so and does nothing — no sign-in, no ok audit
// event, no "your device is joining" — even when its browser was already
// on its way (issue 12, defect 5).
func TestChoiceOneLoginOneSuccess(t *testing.T) {
	const password = "correct horse battery staple"

	t.Run("local wins, then the provider's callback", func(t *testing.T) {
		m := New(t, Options{Policy: mfaPolicy, OIDC: &OIDCOptions{Users: idpUsers}, LocalLogin: true})
		dave, secret := m.LocalUser("dave@example.com", password, true)
		laptop := m.AddNode("dave-laptop", NodeOptions{})
		loginURL, err := laptop.LoginURL(wait)
		must(t, err)
		oidcLink, _ := choiceLinks(t, m, loginURL)
		// Ann's browser has been to the provider and is on its way back.
		annBrowser := oidctest.NewBrowser(t, oidc.CallbackPath)
		callback := annBrowser.SignIn(oidcLink, "ann")

		if status, page := m.AsLocalUser(dave.Name, password, secret)(loginURL); status != http.StatusOK || !strings.Contains(page, "Signed in") {
			t.Fatalf("local sign-in: %d %s", status, page)
		}
		must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.User == dave.Name }))

		p := annBrowser.Open(callback)
		if p.Status != http.StatusGone || !strings.Contains(p.Body, "already finished") || strings.Contains(p.Body, "joining") {
			t.Fatalf("the provider's callback after the local sign-in: %d %s", p.Status, p.Body)
		}
		if p := oidctest.NewBrowser(t, oidc.CallbackPath).Open(oidcLink); strings.Contains(p.Body, "joining") || p.Status == http.StatusFound {
			t.Fatalf("the OIDC link after the local sign-in: %d %s", p.Status, p.Body)
		}
		if _, err := m.Coord.Store().GetUserByName(context.Background(), "ann@example.com"); err == nil {
			t.Fatal("the second link signed ann in")
		}
		checkAudit(t, m, "login.oidc", "ok", 0)
		checkAudit(t, m, "login.local", "ok", 1)
		if self := laptop.Netmap().Self; self.User != dave.Name {
			t.Fatalf("the device belongs to %s, want %s", self.User, dave.Name)
		}
	})

	t.Run("provider wins, then the local form", func(t *testing.T) {
		m := New(t, Options{Policy: mfaPolicy, OIDC: &OIDCOptions{Users: idpUsers}, LocalLogin: true})
		dave, _ := m.LocalUser("dave@example.com", password, false)
		laptop := m.AddNode("ann-laptop", NodeOptions{})
		loginURL, err := laptop.LoginURL(wait)
		must(t, err)
		_, localLink := choiceLinks(t, m, loginURL)
		// Dave has the local form open.
		daveBrowser := oidctest.NewBrowser(t, "")
		form := daveBrowser.Open(localLink)
		if form.Status != http.StatusOK {
			t.Fatalf("local form: %d %s", form.Status, form.Body)
		}

		if status, page := m.AsOIDCUser("ann")(loginURL); status != http.StatusOK || !strings.Contains(page, "Signed in") {
			t.Fatalf("OIDC sign-in: %d %s", status, page)
		}
		must(t, laptop.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm.Self.User == "ann@example.com" }))

		p := daveBrowser.Submit(form, map[string]string{"user": dave.Name, "password": password})
		if p.Status != http.StatusGone || !strings.Contains(p.Body, "already finished") || strings.Contains(p.Body, "joining") {
			t.Fatalf("the local form after the OIDC sign-in: %d %s", p.Status, p.Body)
		}
		if p := oidctest.NewBrowser(t, "").Open(localLink); p.Status != http.StatusGone || !strings.Contains(p.Body, "already finished") {
			t.Fatalf("the local link after the OIDC sign-in: %d %s", p.Status, p.Body)
		}
		checkAudit(t, m, "login.local", "ok", 0)
		checkAudit(t, m, "login.oidc", "ok", 1)
		if self := laptop.Netmap().Self; self.User != "ann@example.com" {
			t.Fatalf("the device belongs to %s, want ann@example.com", self.User)
		}
	})
}
