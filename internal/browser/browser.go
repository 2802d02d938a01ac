// Package browser starts a real headless Chromium for tests, through
// chromedp.
//
// Tests call [New]; when no Chromium binary is installed the test is skipped
// with a message saying what to install, except under CI=true, where a
// missing browser fails the test instead, so CI can never pass by skipping.
// It is for tests only.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/internal/eventually"
)

// candidates are the names Debian and other distributions install Chromium
// under, tried in order after $CHROMIUM.
var candidates = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"}

// ErrNotFound means no Chromium binary was found.
var ErrNotFound = errors.New("browser: no chromium binary found (install Debian's chromium package, or set CHROMIUM)")

// Find returns the path of the Chromium binary: $CHROMIUM if set, else the
// first candidate on PATH.
func Find() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// RequireOrSkip skips t when the binary is missing, unless CI=true, where
// it fails t.
func RequireOrSkip(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required under CI=true: %v", what, err)
	}
	t.Skipf("skipping: %s not available: %v", what, err)
}

// New starts headless Chromium and returns a chromedp context for one tab.
// The browser is closed, and its profile folder removed, when the test ends.
// timeout bounds the whole browser session.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path, err := Find()
	RequireOrSkip(t, "chromium", err)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium at %s: %v", path, err)
	}
	return ctx
}

// Console collects the page's console messages (calls, exceptions and the
// browser log, CSP reports among them) from now on. messages returns what
// arrived so far; stop ends the collection and waits for it, and runs at
// the end of the test if not called before.
func Console(t testing.TB, ctx context.Context) (messages func() []chromedp.ConsoleMessage, stop func()) {
	var (
		mu  sync.Mutex
		got []chromedp.ConsoleMessage
	)
	consoleCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	console := chromedp.Console(consoleCtx)
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	messages = func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), got...)
	}
	return messages, stop
}

// Screenshot takes a full-page PNG, writes it to $SSEGUARD_ARTIFACTS (or
// a temporary folder) named after the test, logs where, and returns it
// (nil when the browser could not take it).
func Screenshot(t testing.TB, ctx context.Context) []byte {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("no screenshot: %v", err)
		return nil
	}
	dir := os.Getenv("SSEGUARD_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts folder: %v", err)
		return png
	}
	path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("saving the screenshot: %v", err)
		return png
	}
	t.Logf("screenshot: %s", path)
	return png
}

// Settle waits until every console message the page logged before now has
// reached messages (from Console): it logs a unique marker from the page
// and waits for it to arrive. The renderer reports console calls,
// exceptions and its log entries (CSP reports among them) over one
// DevTools session, in the order they happened, so once the marker is in,
// nothing logged before it is still on the way. Use it before asserting
// that no error was logged, instead of waiting a fixed time, which lets a
// late error pass unseen on a slow machine.
func Settle(t testing.TB, ctx context.Context, messages func() []chromedp.ConsoleMessage) {
	t.Helper()
	marker := fmt.Sprintf("sseguard-test-settle-%d", time.Now().UnixNano())
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("console.debug(%q), true", marker))); err != nil {
		t.Fatalf("logging the settle marker: %v", err)
	}
	eventually.True(t, 0, func() bool {
		for _, m := range messages() {
			if m.Text == marker {
				return true
			}
		}
		return false
	}, "the page's console marker %s arrived", marker)
}

// IsSettleMarker reports whether m is a marker Settle logged, for tests
// that list every message.
func IsSettleMarker(m chromedp.ConsoleMessage) bool {
	return strings.HasPrefix(m.Text, "sseguard-test-settle-")
}
