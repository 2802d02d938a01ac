package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Stable machine codes for the error member of a Problem. Clients may switch
// on them; they never change meaning. [Codes] describes each.
const (
	CodeAcceptNotAcceptable = "accept_not_acceptable"
	CodeOriginForbidden     = "origin_forbidden"
	CodeTokenMissing        = "token_missing"
	CodeTokenInvalid        = "token_invalid"
	CodeTokenExpired        = "token_expired"
	CodeTopicForbidden      = "topic_forbidden"
	CodeRateLimited         = "rate_limited"
	CodeTooManyStreams      = "too_many_streams"
	CodeBodyTooLarge        = "body_too_large"
	CodeRequestTimeout      = "request_timeout"
	CodeBadRequest          = "bad_request"
	CodeInvalidEvent        = "invalid_event"
	CodeIdempotencyReused   = "idempotency_key_reused"
	CodeNotFound            = "not_found"
	CodePresenceOff         = "presence_off"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeUnsupportedMedia    = "unsupported_media_type"
	CodeInternal            = "internal_error"
	CodeUnavailable         = "unavailable"
	CodeStoreUnavailable    = "store_unavailable"
	CodeUpstreamFailed      = "upstream_failed"
	CodeUpstreamTimeout     = "upstream_timeout"
)

// CodeInfo documents one machine code.
type CodeInfo struct {
	Code    string
	Status  int
	Meaning string
}

// Codes lists every machine code with its usual status and meaning;
// docs/errors.md is generated from it.
var Codes = []CodeInfo{
	{CodeAcceptNotAcceptable, 406, "Accept does not allow the response type: a stream needs Accept: text/event-stream (strict mode refuses */* alone); the poll fallback needs JSON."},
	{CodeOriginForbidden, 403, "the Origin is not allowed for this principal."},
	{CodeTokenMissing, 401, "no credentials were sent."},
	{CodeTokenInvalid, 401, "the token's signature, algorithm or claims are not valid."},
	{CodeTokenExpired, 401, "the token has expired."},
	{CodeTopicForbidden, 403, "the principal may not subscribe or publish to the topic."},
	{CodeRateLimited, 429, "the publish rate limit was exceeded; Retry-After says when to try again."},
	{CodeTooManyStreams, 429, "the limit of open streams for this principal or address was reached."},
	{CodeBodyTooLarge, 413, "the request body exceeds the limit."},
	{CodeRequestTimeout, 408, "the request body did not arrive within limits.read_body_timeout; the connection is closed."},
	{CodeBadRequest, 400, "the request is malformed: the detail says which parameter."},
	{CodeInvalidEvent, 400, "an event field cannot be sent safely: a type that is not a token of at most 256 bytes or is reserved (open, error, reset, sseguard.*), data that is not UTF-8."},
	{CodeIdempotencyReused, 422, "the Idempotency-Key was already used by this principal for a different publish (another topic, type or data); nothing was stored. Use a new key for a new event."},
	{CodeNotFound, 404, "no such route."},
	{CodePresenceOff, 404, "GET /api/presence: the topic is not one presence.topics tracks (or presence is off), so its subscribers are not counted."},
	{CodeMethodNotAllowed, 405, "the route exists but not for this method; Allow lists the methods."},
	{CodeUnsupportedMedia, 415, "the request body's Content-Type is not one the route reads."},
	{CodeInternal, 500, "the server failed; details are in the server log, never in the response."},
	{CodeUnavailable, 503, "the server is shutting down or its store failed; retry after Retry-After."},
	{CodeStoreUnavailable, 503, "the event store (Redis) cannot be reached; nothing of this request was acknowledged. Retry after Retry-After, with the same Idempotency-Key for a publish."},
	{CodeUpstreamFailed, 502, "the proxy's upstream failed or answered with something the policy refuses."},
	{CodeUpstreamTimeout, 504, "the proxy's upstream did not answer in time."},
}

// ProblemTypeBase prefixes the code to form a Problem's type URI. The URIs
// identify problem types and are not meant to be dereferenced (RFC 9457
// section 3.1.1); docs/errors.md describes each.
const ProblemTypeBase = "urn:sseguard:problem:"

// DefaultRetryAfter is the Retry-After sent on 406, 429 and 503 when a
// Problem does not set its own.
const DefaultRetryAfter = 30 * time.Second

// Problem is an RFC 9457 problem details object, and an error. Everything in
// it is shown to the client; put what only operators may see in Err.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Code is the stable machine code, one of the Code constants.
	Code string `json:"error"`
	// Fallback is the URL of the JSON polling fallback, where one exists.
	Fallback string `json:"fallback,omitempty"`

	// RetryAfter, when positive, is sent as Retry-After in whole seconds
	// (rounded up). Zero means DefaultRetryAfter on 406, 429 and 503 and
	// none otherwise.
	RetryAfter time.Duration `json:"-"`
	// Header holds extra response headers, such as Allow on a 405.
	Header http.Header `json:"-"`
	// Err is the cause, for logs only; it never reaches the client.
	Err error `json:"-"`
}

// NewProblem returns a Problem with the given status, code and detail, and
// the type and title that follow from them.
func NewProblem(status int, code, detail string) *Problem {
	return &Problem{
		Type:   ProblemTypeBase + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
		Code:   code,
	}
}

// Errorf is NewProblem with a formatted detail.
func Errorf(status int, code, format string, args ...any) *Problem {
	return NewProblem(status, code, fmt.Sprintf(format, args...))
}

func (p *Problem) Error() string {
	if p.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", p.Status, p.Code, p.Detail, p.Err)
	}
	return fmt.Sprintf("%d %s: %s", p.Status, p.Code, p.Detail)
}

// Unwrap returns the logged cause.
func (p *Problem) Unwrap() error { return p.Err }

// retryAfter returns the Retry-After to send, or 0 for none.
func (p *Problem) retryAfter() time.Duration {
	if p.RetryAfter > 0 {
		return p.RetryAfter
	}
	switch p.Status {
	case http.StatusNotAcceptable, http.StatusTooManyRequests, http.StatusServiceUnavailable:
		return DefaultRetryAfter
	}
	return 0
}

type profileKey struct{}

// WithProfile returns a context that carries p, so that WriteProblem and the
// stream writer apply it. Middleware does this for every request.
func WithProfile(ctx context.Context, p *Profile) context.Context {
	return context.WithValue(ctx, profileKey{}, p)
}

// FromContext returns the profile that WithProfile stored, or Strict.
func FromContext(ctx context.Context) *Profile {
	if p, ok := ctx.Value(profileKey{}).(*Profile); ok && p != nil {
		return p
	}
	return Strict
}

// WriteProblem writes prob as the whole response to r, with the problem
// headers of the request's profile replacing whatever the handler had set.
// It is the only way sseguard writes an error. A nil prob writes a 500.
func WriteProblem(w http.ResponseWriter, r *http.Request, prob *Problem) {
	if prob == nil {
		prob = NewProblem(http.StatusInternalServerError, CodeInternal, "")
	}
	if prob.Type == "" {
		prob.Type = ProblemTypeBase + prob.Code
	}
	if prob.Title == "" {
		prob.Title = http.StatusText(prob.Status)
	}
	h := w.Header()
	for _, name := range []string{"Content-Length", "Content-Encoding", "ETag", "Last-Modified",
		"X-Accel-Buffering", "Connection", "Keep-Alive"} {
		h.Del(name)
	}
	FromContext(r.Context()).ApplyTo(w, r, KindProblem)
	for k, vs := range prob.Header {
		h[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if d := prob.retryAfter(); d > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10))
	}
	body, err := json.Marshal(prob)
	if err != nil { // a Problem holds only strings and ints
		body = []byte(`{"type":"` + ProblemTypeBase + CodeInternal + `","title":"Internal Server Error","status":500,"error":"internal_error"}`)
	}
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if e := findEnforcer(w); e != nil {
		e.problemCode = prob.Code
		e.corsOrigin = refusalOrigin(r) // readable only by an allowed origin
	}
	w.WriteHeader(prob.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// refusalOrigin returns the Origin of r when r's profile lets it read
// refusals (Profile.RefusalOrigins), else "".
func refusalOrigin(r *http.Request) string {
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(FromContext(r.Context()).RefusalOrigins, origin) {
		return ""
	}
	return origin
}
