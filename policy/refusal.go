package policy

import (
	"net/http"
	"strings"
)

// TokenMissing is the 401 token_missing problem for a request that sent no
// credentials where some are needed, with the WWW-Authenticate challenge
// that RFC 9110 §11.6.1 requires on a 401.
func TokenMissing(detail string) *Problem {
	prob := NewProblem(http.StatusUnauthorized, CodeTokenMissing, detail)
	prob.Header = http.Header{"Www-Authenticate": {`Bearer realm="sseguard"`}}
	return prob
}

// MethodNotAllowed is the 405 method_not_allowed problem for method on a
// resource that takes only allowed, with the Allow header that RFC 9110
// §15.5.6 requires on a 405.
func MethodNotAllowed(method string, allowed ...string) *Problem {
	allow := strings.Join(allowed, ", ")
	prob := Errorf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s is not allowed here; use %s", method, allow)
	prob.Header = http.Header{"Allow": {allow}}
	return prob
}

// AllowMethods returns middleware that lets only the given methods reach
// next and refuses the others with MethodNotAllowed.
func AllowMethods(methods ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, m := range methods {
				if r.Method == m {
					next.ServeHTTP(w, r)
					return
				}
			}
			WriteProblem(w, r, MethodNotAllowed(r.Method, methods...))
		})
	}
}
