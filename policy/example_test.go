package policy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/sseguard/sseguard/policy"
)

// ExampleMiddleware hardens a stream handler: the strict profile's headers
// go on every answer, and a request that does not ask for
// text/event-stream (here legacy XHR streaming with Accept: */*) is
// refused with a problem+json 406 before the handler runs.
func ExampleMiddleware() {
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})
	h := policy.Middleware(policy.Strict)(stream)

	for _, accept := range []string{"*/*", "text/event-stream"} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/events", nil)
		r.Header.Set("Accept", accept)
		h.ServeHTTP(rec, r)
		fmt.Println(accept, "->", rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("X-Content-Type-Options"))
	}
	// Output:
	// */* -> 406 application/problem+json nosniff
	// text/event-stream -> 200 text/event-stream; charset=utf-8 nosniff
}

// ExampleWriteProblem answers a refusal in the one error shape, with its
// stable machine code.
func ExampleWriteProblem() {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/api/publish", nil)
	policy.WriteProblem(rec, r, policy.Errorf(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not publish to topic %q", "news"))
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Header().Get("Cache-Control"))
	fmt.Println(rec.Body.String())
	// Output:
	// 403 application/problem+json no-store
	// {"type":"urn:sseguard:problem:topic_forbidden","title":"Forbidden","status":403,"detail":"this token may not publish to topic \"news\"","error":"topic_forbidden"}
}
