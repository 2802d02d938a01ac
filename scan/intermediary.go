package scan

import (
	"slices"
	"strings"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Intermediaries whose fixes rules carry (Rule.Fixes keys), as the
// scanner recognises them in response headers.
const (
	Nginx   = "nginx"
	HAProxy = "haproxy"
	Apache  = "apache"
	Caddy   = "caddy"
	Varnish = "varnish"
	Squid   = "squid"
)

// intermediaryNames are the display names, in the order fixes are listed.
var intermediaryNames = []struct{ key, name string }{
	{Nginx, "nginx"}, {HAProxy, "HAProxy"}, {Apache, "Apache httpd"}, {Caddy, "Caddy"}, {Varnish, "Varnish"}, {Squid, "Squid"},
}

// intermediariesOf names the intermediaries res shows it passed: Server,
// Via and the caches' own headers. HAProxy adds none by default, so it is
// never recognised; rules that blame an intermediary then list every fix.
func intermediariesOf(res *rawhttp.Response) []string {
	server := strings.ToLower(strings.Join(res.Values("Server"), " "))
	via := strings.ToLower(strings.Join(res.Values("Via"), " "))
	var out []string
	add := func(ok bool, key string) {
		if ok && !slices.Contains(out, key) {
			out = append(out, key)
		}
	}
	add(strings.Contains(server, "nginx"), Nginx)
	add(strings.Contains(server, "apache"), Apache)
	add(strings.Contains(server, "caddy") || strings.Contains(via, "caddy"), Caddy)
	add(strings.Contains(via, "varnish") || len(res.Values("X-Varnish")) > 0, Varnish)
	add(strings.Contains(via, "squid") || strings.Contains(server, "squid"), Squid)
	add(strings.Contains(via, "haproxy") || strings.Contains(server, "haproxy"), HAProxy)
	return out
}

// fixesFor returns the intermediary fixes of rule r to append to a
// finding's remediation: those of the intermediaries seen, or, for a rule
// whose cause is always an intermediary, every one when none was
// recognised. nginx's come from Rule.Nginx.
func fixesFor(r *Rule, seen []string) string {
	var b strings.Builder
	all := len(seen) == 0 && r.blamesIntermediary
	for _, in := range intermediaryNames {
		if !all && !slices.Contains(seen, in.key) {
			continue
		}
		fix := r.Fixes[in.key]
		if in.key == Nginx {
			fix = r.Nginx
		}
		if fix != "" {
			b.WriteString(" " + in.name + ": " + fix)
		}
	}
	return b.String()
}
