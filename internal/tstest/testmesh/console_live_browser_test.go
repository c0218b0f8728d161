package testmesh

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/warrenmesh/warren/coordinator/registry"
	"github.com/warrenmesh/warren/internal/tstest/browser"
	"github.com/warrenmesh/warren/internal/tstest/consoletest"
	"github.com/warrenmesh/warren/node/controlclient"
)

// liveWait bounds how long a live update may take to show in the browser
// (a failure bound: the console's streams poll once a second).
const liveWait = 20 * time.Second

// TestConsoleLiveInBrowser: the admin pages update without reloading. On
// the nodes page a laptop that goes away turns from online to offline;
// on the overview a device that joins raises the counts. Neither page
// navigates (a navigation fails the poll), and the browser reports no
// Content-Security-Policy violation.
func TestConsoleLiveInBrowser(t *testing.T) {
	if path, why := browser.Find(); path == "" {
		t.Skip(why)
	}
	cm := newConsoleMesh(t, consolePolicy)
	b := browser.New(t, browserLimit)
	// Signed in through the real pages by Go's HTTP client, which submits
	// the TOTP code at once, and the session handed to the browser (the
	// browser's own sign-in is TestConsoleAdminInBrowser's).
	hc := consoletest.SignIn(t, cm.URL, cm.admin)
	u, err := url.Parse(cm.URL)
	must(t, err)
	var set bool
	for _, c := range hc.HTTP.Jar.Cookies(u) {
		httpOnly := true
		if _, err := chromedp.Call(b.Context(), network.SetCookie, network.SetCookieParams{Name: c.Name, Value: c.Value, URL: cm.URL + "/",
			HTTPOnly: &httpOnly, SameSite: network.CookieSameSiteStrict}); err != nil {
			t.Fatal(err)
		}
		set = true
	}
	if !set {
		t.Fatal("no session cookie after signing in")
	}

	ann := cm.ann.Netmap().Self.ID
	presence := fmt.Sprintf(`document.querySelector('tr[data-node-id="%d"] [data-live="presence"]')`, ann)
	b.Do("open the nodes page", chromedp.Navigate(cm.URL+"/admin/nodes"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-node-id="%d"]`, ann))))
	b.Do("see the laptop online", chromedp.Poll[chromedp.Void](presence+`.textContent === "online"`, chromedp.WithPollingTimeout(liveWait)))
	cm.ann.Stop()
	b.Do("see the laptop go offline without reloading",
		chromedp.Poll[chromedp.Void](presence+`.textContent === "offline"`, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(liveWait)))
	b.Screenshot("live-nodes")

	b.Do("open the overview", chromedp.Navigate(cm.URL+"/admin/overview"), chromedp.WaitVisible(chromedp.CSS(`[data-live="online"]`)))
	count := func(name string) string {
		return fmt.Sprintf(`document.querySelector('[data-live="%s"]').textContent`, name)
	}
	b.Do("see one node online of two", chromedp.Poll[chromedp.Void](count("online")+` === "1" && `+count("total")+` === "2"`,
		chromedp.WithPollingTimeout(liveWait)))
	carol := cm.User("carol@example.com")
	n := cm.AddNode("carol-laptop", NodeOptions{AuthKey: cm.AuthKey(registry.AuthKeyRequest{UserID: carol.ID, TTL: time.Hour})})
	must(t, n.WaitFor(wait, func(nm *controlclient.Netmap) bool { return nm != nil && nm.Self.ID != 0 }))
	b.Do("see the new device counted without reloading",
		chromedp.Poll[chromedp.Void](count("online")+` === "2" && `+count("total")+` === "3"`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(liveWait)))
	b.Screenshot("live-overview")
	if errs := cspErrors(b); len(errs) > 0 {
		t.Fatalf("the browser reported: %v", errs)
	}
}
