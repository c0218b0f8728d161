// Package browser runs a real headless Chromium for tests, driven over the
// DevTools protocol with chromedp: one browser per test, its own profile in
// a temporary directory, every action bounded in time, and the browser's
// console errors (a Content-Security-Policy violation among them) kept for
// the test to check. Without a Chromium binary, New skips the test and
// says why.
//
// It must never be imported by production code, never reach anything but
// loopback (every host name but 127.0.0.1, ::1 and localhost resolves to
// nothing, and Chromium's background networking is off), and never turn
// the sandbox off except where Chromium refuses to run with it (as root).
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// EnvChromium names a Chromium binary to use instead of looking in PATH.
const EnvChromium = "WARREN_TEST_CHROMIUM"

// EnvArtifacts is the folder screenshots are written to (default: a
// temporary directory of the test, removed after it).
const EnvArtifacts = "WARREN_TEST_ARTIFACTS"

// candidates are the names Chromium is installed under: Debian's package
// first.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless_shell"}

// Find returns the Chromium binary the tests use, or "" with why not.
func Find() (path, why string) {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Sprintf("%s=%s: %v", EnvChromium, p, err)
		}
		return p, ""
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", fmt.Sprintf("no Chromium binary (looked for %s in PATH; install Debian's chromium package, as .ci/run does, or set %s)",
		strings.Join(candidates, ", "), EnvChromium)
}

// Browser is one headless Chromium with one tab.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration
	dir     string // screenshots

	mu     sync.Mutex
	errors []string // console errors and uncaught exceptions
}

// DefaultTimeout bounds each Run.
const DefaultTimeout = 30 * time.Second

// New starts a browser for t, closed when t ends; the whole test's use of
// it is bounded by limit. It skips t without a Chromium binary.
func New(t testing.TB, limit time.Duration) *Browser {
	t.Helper()
	exe, why := Find()
	if exe == "" {
		t.Skip("browser test skipped: " + why)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]"),
		chromedp.WSURLReadTimeout(limit),
	}
	if os.Geteuid() == 0 {
		// Chromium refuses to start its sandbox as root.
		opts = append(opts, chromedp.NoSandbox)
	}
	ctx, cancelTime := context.WithTimeout(context.Background(), limit)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	b := &Browser{t: t, timeout: DefaultTimeout, dir: artifacts(t)}
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithListener(b.listen))
	b.ctx = bctx
	t.Cleanup(func() {
		cancelBrowser() // closes the tab and the browser, and waits for it
		cancelAlloc()
		cancelTime()
	})
	// The first Run starts the browser; the Log domain reports CSP
	// violations and failed loads.
	if _, err := chromedp.Call(bctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}
	return b
}

// listen keeps the tab's errors (it runs on the tab's reading goroutine
// and must return at once).
func (b *Browser) listen(ev any) {
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		if ev.Entry != nil && ev.Entry.Level == log.EntryLevelError {
			b.note(fmt.Sprintf("%s: %s (%s)", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *runtime.EventExceptionThrown:
		if d := ev.ExceptionDetails; d != nil {
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			b.note(fmt.Sprintf("uncaught exception at %s:%d: %s", d.URL, d.LineNumber+1, text))
		}
	case *runtime.EventConsoleAPICalled:
		if os.Getenv("WARREN_TEST_BROWSER_CONSOLE") != "" {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.t.Logf("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			b.note("console.error: " + strings.Join(parts, " "))
		}
	}
}

func (b *Browser) note(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errors = append(b.errors, s)
}

// Errors returns the console errors and uncaught exceptions so far.
func (b *Browser) Errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// Context is the tab's context, for chromedp calls the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// Do runs actions in the tab within DefaultTimeout, failing the test
// with what (and a screenshot) on error.
func (b *Browser) Do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.Try(actions...); err != nil {
		b.Screenshot("failed-" + what)
		b.t.Fatalf("%s: %v (console errors: %q)", what, err, b.Errors())
	}
}

// Try runs actions within DefaultTimeout and returns their error.
func (b *Browser) Try(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Get runs one action that returns a value within DefaultTimeout, failing
// the test with what on error.
func Get[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.Screenshot("failed-" + what)
		b.t.Fatalf("%s: %v (console errors: %q)", what, err, b.Errors())
	}
	return v
}

// Text returns the visible text of the first element matching the CSS
// selector sel, waiting for it to be visible.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	return Get(b, "read "+sel, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
}

// Screenshot saves the whole page as name.png in the artifacts folder
// and returns its path ("" if it could not).
func (b *Browser) Screenshot(name string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(b.dir, safeName(name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// artifacts is the folder for t's screenshots.
func artifacts(t testing.TB) string {
	dir := os.Getenv(EnvArtifacts)
	if dir == "" {
		return t.TempDir()
	}
	dir = filepath.Join(dir, safeName(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts folder: %v", err)
	}
	return dir
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
}
