package browser_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/warrenmesh/warren/internal/tstest/browser"
	"github.com/warrenmesh/warren/internal/tstest/poll"
)

// TestBrowserSeesPageAndCSPViolations drives a page on loopback: the
// browser reads it, types into it, and reports an inline script the
// page's Content-Security-Policy refused, which is how the console's
// browser tests prove a page has none.
func TestBrowserSeesPageAndCSPViolations(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/inline" {
			_, _ = w.Write([]byte(`<!doctype html><title>x</title><script>document.title = "ran"</script><p id="p">inline</p>`))
			return
		}
		_, _ = w.Write([]byte(`<!doctype html><title>plain</title><p id="p">hello</p><input id="in">`))
	}))
	defer ts.Close()
	b := browser.New(t, time.Minute)
	b.Do("open plain page", chromedp.Navigate(ts.URL+"/"), chromedp.SendKeys(chromedp.CSS("#in"), "typed"))
	if got := b.Text("#p"); got != "hello" {
		t.Fatalf("text %q", got)
	}
	if v := browser.Get(b, "read input", chromedp.Value(chromedp.CSS("#in"))); v != "typed" {
		t.Fatalf("input %q", v)
	}
	if errs := b.Errors(); len(errs) != 0 {
		t.Fatalf("errors on a clean page: %q", errs)
	}
	if p := b.Screenshot("plain"); p == "" {
		t.Fatal("no screenshot")
	} else if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("screenshot %s: %v", p, err)
	}
	b.Do("open inline page", chromedp.Navigate(ts.URL+"/inline"), chromedp.WaitVisible(chromedp.CSS("#p")))
	if title := browser.Get(b, "title", chromedp.Title()); title != "x" {
		t.Fatalf("the inline script ran: title %q", title)
	}
	// The log entry can come a moment after the load.
	poll.UntilTrue(t, 10*time.Second, "a CSP violation reported", func() bool {
		for _, e := range b.Errors() {
			if strings.Contains(e, "Content Security Policy") {
				return true
			}
		}
		return false
	})
}
