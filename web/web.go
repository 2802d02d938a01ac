// Package web holds the pages sseguard serves, embedded in the binary: the
// demo page at / (index.html, app.js, app.css; app.js subscribes with the
// browser client served at /sseguard.js and shows the transport and, where
// presence.topics tracks the topic, who is listening), and the live
// dashboard (dashboard.html, dashboard.js, dashboard.css) with its login
// form (login.html, no script). No inline script or style and no
// third-party origin, so the strict page CSP holds; dashboard_test.go checks
// both in a browser and without one.
//
// The dashboard draws the "stats" events of /dashboard/stream as SVG
// charts of the last two minutes, and the "history" event (sent on
// connect and when a minute closes) as the last hour: a row per minute
// with refusals by code, the hour's refusal spikes pinned, the top
// refused routes and origins; the charts start from its seconds. The server routes /dashboard,
// /dashboard/login and /dashboard/stream and decides who may see them.
//
// Package web serves files; it does not decide security headers: the
// caller's policy does (the server runs policy.Harden around Handler and
// gives it the page headers to put on scripts, styles and the icon).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strconv"
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
// get notFound. headers, when not nil, is called before a file is served
// to set the caller's headers; Handler then sets Content-Type and
// Content-Length over them. A HEAD gets the headers of the GET, no body.
func Handler(notFound http.Handler, headers func(http.ResponseWriter, *http.Request)) http.Handler {
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
		if headers != nil {
			headers(w, r)
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(b)
	})
}
