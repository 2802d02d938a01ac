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
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
