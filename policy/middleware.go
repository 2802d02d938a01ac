package policy

import (
	"bufio"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime/debug"
)

// An Option changes what [Harden] and [Middleware] do.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger sends the panics that Harden and Middleware recover to log:
// one record at level ERROR, with the method, the path, the panic value
// and the stack as fields. Without it they go to slog.Default(), which a
// program that logs JSON must then have set to its own logger, or the
// record lands as a line of text among the JSON.
func WithLogger(log *slog.Logger) Option {
	return func(o *options) { o.log = log }
}

func newOptions(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Middleware returns net/http middleware for a stream endpoint. For every
// request it:
//
//   - refuses a request whose Accept does not allow text/event-stream under
//     p with a 406 problem that points to p.Fallback;
//   - sets p's stream headers before the handler runs, and sets them again
//     when the handler writes its header, so a handler cannot duplicate or
//     drop one (Content-Length and Content-Encoding are removed);
//   - applies p's problem, JSON or page headers instead when the handler
//     answers with one of those content types;
//   - turns a panic into a 500 problem, or, once the status line has gone
//     out, aborts the response (the client sees a cut stream and
//     reconnects), and logs the panic with its stack, never sending it
//     (see [WithLogger]).
//
// The handler's ResponseWriter still supports Flush, Hijack and
// http.ResponseController.
func Middleware(p *Profile, opts ...Option) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return Harden(p, opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if prob := p.CheckStreamAccept(r); prob != nil {
				WriteProblem(w, r, prob)
				return
			}
			p.ApplyTo(w, r, KindStream)
			next.ServeHTTP(w, r)
		}))
	}
}

// Harden returns middleware for any endpoint: it stores p in the request
// context (for WriteProblem and sse.NewStream), enforces p's headers for the
// kind of response the handler writes, judged by its Content-Type when the
// header is written, and recovers panics as Middleware does. It does not
// negotiate Accept.
//
// A handler that returns without writing anything (a HEAD answered by
// setting headers only) gets its 200 written here, so that the headers are
// enforced on it too; net/http would otherwise send them as they were.
func Harden(p *Profile, opts ...Option) func(http.Handler) http.Handler {
	o := newOptions(opts)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(WithProfile(r.Context(), p))
			ew := &enforcer{ResponseWriter: w, r: r, p: p, log: o.log}
			defer ew.recover()
			next.ServeHTTP(ew, r)
			if !ew.wroteHeader && !ew.hijacked {
				ew.WriteHeader(http.StatusOK)
			}
		})
	}
}

// KindOf maps a Content-Type value to the kind of response it is, and
// whether it is one the profile knows.
func KindOf(contentType string) (Kind, bool) {
	// The values sseguard itself writes, known without parsing (which
	// allocates a map per call).
	switch contentType {
	case "application/json":
		return KindJSON, true
	case "application/problem+json":
		return KindProblem, true
	case "text/event-stream; charset=utf-8", "text/event-stream":
		return KindStream, true
	case "text/html; charset=utf-8":
		return KindPage, true
	}
	return kindOfParsed(contentType)
}

// kindOfParsed is KindOf for any value, parsed.
func kindOfParsed(contentType string) (Kind, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case "text/event-stream":
		return KindStream, true
	case "application/problem+json":
		return KindProblem, true
	case "application/json":
		return KindJSON, true
	case "text/html":
		return KindPage, true
	}
	return 0, false
}

// enforcer applies the profile at the moment the header is written.
type enforcer struct {
	http.ResponseWriter
	r           *http.Request
	p           *Profile
	log         *slog.Logger // nil: slog.Default()
	wroteHeader bool
	hijacked    bool
	corsOrigin  string // set by AllowOrigin
	problemCode string // set by WriteProblem
}

// findEnforcer returns the enforcer under w, if Harden or Middleware put
// one there.
func findEnforcer(w http.ResponseWriter) *enforcer {
	for {
		if e, ok := w.(*enforcer); ok {
			return e
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
}

func (e *enforcer) WriteHeader(code int) {
	if e.wroteHeader {
		e.ResponseWriter.WriteHeader(code) // let net/http log the superfluous call
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.wroteHeader = true
	h := e.Header()
	if k, ok := KindOf(h.Get("Content-Type")); ok {
		e.p.ApplyTo(e.ResponseWriter, e.r, k)
	} else {
		if _, has := h["X-Content-Type-Options"]; !has {
			h.Set("X-Content-Type-Options", "nosniff")
		}
		e.p.ApplyEdge(h)
	}
	applyCORS(h, e.corsOrigin)
	if e.p.Observe != nil {
		e.p.Observe(e.r, code, e.problemCode)
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *enforcer) Write(b []byte) (int, error) {
	if !e.wroteHeader {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(b)
}

// Flush implements http.Flusher.
func (e *enforcer) Flush() {
	if !e.wroteHeader {
		e.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(e.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker where the underlying writer does.
func (e *enforcer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(e.ResponseWriter).Hijack()
	if err == nil {
		e.hijacked = true
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (e *enforcer) Unwrap() http.ResponseWriter { return e.ResponseWriter }

func (e *enforcer) recover() {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	log := e.log
	if log == nil {
		log = slog.Default()
	}
	// One record: the stack is a field, which JSON keeps on one line.
	log.ErrorContext(e.r.Context(), "handler panic", "method", e.r.Method, "path", e.r.URL.Path,
		"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if e.wroteHeader {
		// The status is on the wire; cutting the response is the only honest
		// signal left, and EventSource reconnects after it.
		panic(http.ErrAbortHandler)
	}
	prob := NewProblem(http.StatusInternalServerError, CodeInternal, "the server failed to handle this request")
	WriteProblem(e, e.r, prob)
}
