// Package web holds the pages sseguard serves, embedded in the binary: the
// demo page at / (index.html, app.js, app.css), and the live
// dashboard (dashboard.html, dashboard.js, dashboard.css) with its login
// form (login.html, no script). No inline script or style and no
// third-party origin, so the strict page CSP holds; dashboard_test.go checks
// both in a browser and without one.
//
// The dashboard draws the "stats" events of /dashboard/stream as SVG
// charts of the last two minutes. The server routes /dashboard,
// /dashboard/login and /dashboard/stream and decides who may see them.
//
// Package web serves files; it does not set security headers (policy.Harden
// around its handler does).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var files embed.FS

// Static is the embedded file tree, rooted at the site root.
var Static, _ = fs.Sub(files, "static")

// contentTypes are set explicitly so that nothing is sniffed.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the embedded files; "/" serves index.html. Unknown paths
// get notFound.
func Handler(notFound http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
		if name == "" {
			name = "index.html"
		}
		ctype, ok := contentTypes[path.Ext(name)]
		b, err := fs.ReadFile(Static, name)
		if err != nil || !ok || strings.HasPrefix(name, ".") {
			notFound.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", ctype)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
