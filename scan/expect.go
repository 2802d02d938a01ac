package scan

import (
	"net/http"
	"strings"

	"github.com/sseguard/sseguard/policy"
)

// What the scanner expects comes from package policy, never from a copy
// here: the stream headers from Profile.Headers, the refusal headers from
// what policy.WriteProblem itself writes, the Accept decision from
// policy.AcceptsEventStream.

// refusedAccept reports whether the profile refuses a stream request with
// this Accept header.
func refusedAccept(p *policy.Profile, accept string) bool {
	return !policy.AcceptsEventStream([]string{accept}, p.Accept)
}

// problemReference returns the headers policy.WriteProblem writes for a
// refusal with this status under p, for a request of the given version.
func problemReference(p *policy.Profile, status, major, minor int) http.Header {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.ProtoMajor, r.ProtoMinor = major, minor
	r = r.WithContext(policy.WithProfile(r.Context(), p))
	rec := &headerRecorder{h: http.Header{}}
	policy.WriteProblem(rec, r, policy.NewProblem(status, policy.CodeBadRequest, "reference"))
	return rec.h
}

// headerRecorder is the least ResponseWriter: it keeps the header.
type headerRecorder struct{ h http.Header }

func (r *headerRecorder) Header() http.Header         { return r.h }
func (r *headerRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *headerRecorder) WriteHeader(int)             {}

// cacheDirectives parses Cache-Control lines into lower-case directive
// names and their values.
func cacheDirectives(values []string) map[string]string {
	out := map[string]string{}
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			d = strings.TrimSpace(d)
			if d == "" {
				continue
			}
			name, val, _ := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if _, seen := out[name]; !seen {
				out[name] = strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return out
}

// valueMatches reports whether a header's lines meet the policy value for
// it: Cache-Control needs every directive of the policy value, Content-Type
// the same essence (and charset, when the policy names one),
// Content-Security-Policy every directive with the same sources, and other
// headers the same value ignoring case.
func valueMatches(name, want string, got []string) bool {
	if len(got) == 0 {
		return false
	}
	switch strings.ToLower(name) {
	case "cache-control":
		have := cacheDirectives(got)
		for d := range cacheDirectives([]string{want}) {
			if _, ok := have[d]; !ok {
				return false
			}
		}
		return true
	case "content-type":
		w, _ := policy.ParseMIMEType(want)
		g, ok := policy.ExtractMIMEType(got)
		// A charset where the profile names none is not a deviation;
		// one other than UTF-8 is SSE-CHARSET's to report.
		return ok && g.Essence == w.Essence && (w.Charset() == "" || g.Charset() == w.Charset())
	case "content-security-policy":
		wp := policy.ParseCSP(want)
		for _, gp := range policy.ParseCSPList(got) {
			if cspCovers(gp, wp) {
				return true
			}
		}
		return false
	}
	return len(got) == 1 && strings.EqualFold(strings.TrimSpace(got[0]), strings.TrimSpace(want))
}

// cspCovers reports whether got has every directive of want with the same
// sources (in any order).
func cspCovers(got, want policy.CSP) bool {
	for _, d := range want.Directives {
		srcs, ok := got.Get(d.Name)
		if !ok || len(srcs) != len(d.Sources) {
			return false
		}
		for _, s := range d.Sources {
			found := false
			for _, g := range srcs {
				if strings.EqualFold(g, s) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}
