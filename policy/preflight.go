package policy

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Preflight answers a CORS preflight request (OPTIONS with Origin and
// Access-Control-Request-Method) for an endpoint that takes methods.
//
// Credentials are never sent with a preflight, so only the global
// allowlist can be checked here; the real request is then checked against
// the caller's principal with [DecideOrigin]. The answer is:
//
//   - 405 method_not_allowed, with Allow, when r is a plain OPTIONS and not
//     a preflight;
//   - 403 origin_forbidden when the origin is not in global (and always for
//     "null", "*" and the request's own origin, which never preflights);
//   - 403 method_not_allowed when the requested method is not one of methods;
//   - otherwise 204 with Access-Control-Allow-Methods, -Allow-Headers
//     ([CORSAllowHeaders]), -Max-Age (maxAge in whole seconds), and the
//     origin allowed as [AllowOrigin] does.
func Preflight(w http.ResponseWriter, r *http.Request, global, methods []string, maxAge time.Duration) {
	origin := r.Header.Get("Origin")
	want := r.Header.Get("Access-Control-Request-Method")
	allow := strings.Join(methods, ", ")
	if origin == "" || want == "" {
		prob := Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "OPTIONS is only for CORS preflights here")
		prob.Header = http.Header{"Allow": {allow + ", OPTIONS"}}
		WriteProblem(w, r, prob)
		return
	}
	if DecideOrigin(r, global, global) != CrossOriginAllowed {
		WriteProblem(w, r, NewProblem(http.StatusForbidden, CodeOriginForbidden, "this origin may not use this endpoint"))
		return
	}
	if !slices.Contains(methods, want) {
		WriteProblem(w, r, Errorf(http.StatusForbidden, CodeMethodNotAllowed, "this endpoint takes %s", allow))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", allow)
	h.Set("Access-Control-Allow-Headers", CORSAllowHeaders)
	h.Set("Access-Control-Max-Age", strconv.Itoa(int(maxAge/time.Second)))
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	AllowOrigin(w, origin)
	w.WriteHeader(http.StatusNoContent)
}
