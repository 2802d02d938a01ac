package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Causes from evidence. A finding through an intermediary is the
// intermediary's or the origin's doing; with Config.Origin (--origin URL,
// the backend the intermediary forwards to) the scanner asks the origin
// directly and compares; without it, header evidence (Via, the refusal's
// own error code) decides.

// More probe names.
const (
	ProbeOriginDirect        = "origin-direct"
	ProbeOriginNoCredentials = "origin-no-credentials"
)

// originResult is what the origin answered directly.
type originResult struct {
	url           string
	res           *rawhttp.Response // the stream request with credentials; nil when it failed
	noCredsStatus int               // without credentials; 0 when not asked or failed
}

// originURL is the stream URL with the scheme and host of Config.Origin.
func originURL(origin string, target *url.URL) (string, error) {
	o, err := url.Parse(origin)
	if err != nil || (o.Scheme != "http" && o.Scheme != "https") || o.Host == "" {
		return "", configErrorf("Origin %q: want an absolute http or https URL (the backend behind the intermediary)", origin)
	}
	u := *target
	u.Scheme, u.Host = o.Scheme, o.Host
	return u.String(), nil
}

// startOrigin asks the origin directly, with and without credentials,
// when Config.Origin is set; the function it returns waits for it.
func (s *scanner) startOrigin(ctx context.Context) func() {
	if s.cfg.Origin == "" {
		return func() {}
	}
	target, err := originURL(s.cfg.Origin, s.u)
	if err != nil {
		s.note("%v", err)
		return func() {}
	}
	done := make(chan *originResult, 1)
	go func() {
		o := &originResult{url: target}
		r := s.probe(ctx, probeSpec{name: ProbeOriginDirect, purpose: "the stream request sent straight to the origin (--origin): what the intermediary changes",
			url: target, header: s.cfg.requestHeader()})
		o.res = r.res
		if drop := s.credentialFields(); len(drop) > 0 {
			nr := s.probe(ctx, probeSpec{name: ProbeOriginNoCredentials, purpose: "the origin without the credentials: whether the stream needs them",
				url: target, header: s.cfg.requestHeader(drop...)})
			if nr.res != nil {
				o.noCredsStatus = nr.res.StatusCode
			}
		}
		done <- o
	}()
	return func() {
		o := <-done
		if o.res == nil {
			s.note("the origin %s could not be asked directly, so findings were not compared with it", o.url)
			return
		}
		s.obs.origin = o
		if diff := headerDiff(o.res, s.obs.main); diff != "" {
			s.note("through the intermediary the stream's head differs from the origin's: %s", diff)
		}
	}
}

// headerDiff lists the header lines the intermediary added and removed.
func headerDiff(origin, through *rawhttp.Response) string {
	if origin == nil || through == nil {
		return ""
	}
	line := func(f rawhttp.Field) string { return http.CanonicalHeaderKey(f.Name) + ": " + f.Value }
	skip := func(name string) bool {
		switch strings.ToLower(name) {
		case "date", "age", "via", "x-varnish", "x-cache", "content-length", "transfer-encoding", "connection", "keep-alive":
			return true
		}
		return false
	}
	var from, to []string
	for _, f := range origin.Header {
		if !skip(f.Name) {
			from = append(from, line(f))
		}
	}
	for _, f := range through.Header {
		if !skip(f.Name) {
			to = append(to, line(f))
		}
	}
	var parts []string
	for _, l := range to {
		if i := slices.Index(from, l); i >= 0 {
			from = slices.Delete(from, i, i+1)
		} else {
			parts = append(parts, "added "+l)
		}
	}
	for _, l := range from {
		parts = append(parts, "removed "+l)
	}
	return strings.Join(clipList(parts, 8), "; ")
}

// statusCause says why the stream was refused when the evidence names a
// cause: the origin answers the same request (--origin), or the origin's
// own refusal says no credentials reached it though -H sent some.
func statusCause(p *pass, r *response) string {
	code := r.res.StatusCode
	if code != http.StatusUnauthorized && code != http.StatusForbidden {
		return ""
	}
	sent := slices.ContainsFunc(p.obs.cfg.Header, isCredential)
	if r.probe != ProbeStream || !sent {
		return ""
	}
	if o := p.obs.origin; o != nil && o.res != nil && o.res.StatusCode == http.StatusOK {
		return fmt.Sprintf("; the origin (--origin %s) answers 200 to the same request: the intermediary drops or rewrites the credentials (Squid forwards Authorization to a cache_peer only with login=PASSTHRU)", p.obs.cfg.Origin)
	}
	var prob struct {
		Error string `json:"error"`
	}
	via := len(r.res.Values("Via")) > 0 || len(p.obs.via) > 0
	if via && json.Unmarshal(r.body, &prob) == nil && prob.Error == "token_missing" {
		return "; the origin's refusal says no token reached it (token_missing), though -H sent one: an intermediary on the way (Via) dropped Authorization (Squid forwards it to a cache_peer only with login=PASSTHRU)"
	}
	return ""
}

// viaVersionRE finds a product version in a Via element's received-by
// or comment, such as "(squid/5.7)" or "(Varnish/7.1)", not the
// protocol version that starts it.
var viaVersionRE = regexp.MustCompile(`[A-Za-z][\w.-]*/\s*v?\d`)

// viaVersions returns the Via elements that name a product version.
func viaVersions(values []string) []string {
	var out []string
	for _, v := range values {
		for _, el := range strings.Split(v, ",") {
			el = strings.TrimSpace(el)
			_, rest, _ := strings.Cut(el, " ") // the protocol version
			if viaVersionRE.MatchString(rest) {
				out = append(out, el)
			}
		}
	}
	return out
}
