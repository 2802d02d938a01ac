package scan

import (
	"net/http"

	"github.com/sseguard/sseguard/policy"
)

// What the scanner expects comes from package policy, never from a copy
// here: the stream headers from Profile.Headers, whether a header meets
// them from policy.Satisfies (the comparison the proxy's drift log makes),
// the refusal headers from what policy.WriteProblem itself writes, the
// Accept decision from policy.AcceptsEventStream.

// hasDirective reports whether Cache-Control lines hold the directive.
func hasDirective(lines []string, name string) bool {
	_, ok := policy.LookupCacheDirective(lines, name)
	return ok
}

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
