package proxy

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sseguard/sseguard/policy"
)

// Drift kinds: how an upstream response differed from the policy. They are
// the kind label of sseguard_proxy_header_drift_total and the kind member
// of drift log lines.
const (
	// DriftMissing: the upstream did not send a header the policy sets.
	DriftMissing = "missing"
	// DriftWrongValue: the upstream sent a policy header once, with a
	// value that does not mean what the policy's does (policy.Satisfies,
	// the comparison the scanner makes: Cache-Control directives in another
	// order are no drift, a missing no-transform is), or, on a stream
	// route, a Content-Type other than text/event-stream, which is refused
	// with 502.
	DriftWrongValue = "wrong_value"
	// DriftDuplicate: the upstream sent a policy header more than once.
	DriftDuplicate = "duplicate"
	// DriftForbiddenH2: the upstream sent a connection-specific header
	// (Connection, Keep-Alive, ...) and the client speaks HTTP/2 or later,
	// where it is forbidden (RFC 9113 section 8.2.2).
	DriftForbiddenH2 = "forbidden_h2"
	// DriftContentEncoding: the upstream compressed the response although
	// the proxy asked for identity; the proxy decodes gzip and deflate
	// (zlib or raw) with policy.DecodeContent.
	DriftContentEncoding = "content_encoding"
	// DriftDropped: the upstream sent a header that is not on the
	// allowlist, or one the policy removes from this kind of response
	// (Content-Length on a stream); it did not reach the client.
	DriftDropped = "dropped"
)

// drift is one difference between an upstream response and the policy.
type drift struct {
	header   string   // canonical name
	kind     string   // a Drift constant
	upstream []string // what the upstream sent; empty when missing
	policy   string   // what the client got; empty when removed
}

// headerLabels are the header label values of the drift metric; any other
// header is counted as "other", so upstreams cannot grow the label set.
var headerLabels = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range []*policy.Profile{policy.Strict, policy.Baseline} {
		for _, k := range []policy.Kind{policy.KindStream, policy.KindJSON, policy.KindProblem, policy.KindPage} {
			for _, h := range p.Headers(k, 1, 1) {
				m[http.CanonicalHeaderKey(h.Name)] = true
			}
		}
	}
	for _, n := range policy.ConnectionSpecific {
		m[http.CanonicalHeaderKey(n)] = true
	}
	for _, n := range []string{
		"Content-Length", "Content-Encoding", "Content-Range", "Etag", "Last-Modified", "Set-Cookie", "Server",
		"X-Powered-By", "X-Aspnet-Version", "Via", "Vary", "Location", "Strict-Transport-Security",
		"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers",
		"Access-Control-Allow-Headers", "Access-Control-Allow-Methods",
	} {
		m[n] = true
	}
	return m
}()

func headerLabel(name string) string {
	if headerLabels[name] {
		return name
	}
	return "other"
}

// sensitive matches header names whose values must never be logged.
var sensitive = regexp.MustCompile(`(?i)cookie|auth|token|secret|session|password|key|signature|credential`)

// maxLoggedValue bounds each header value in a log line.
const maxLoggedValue = 256

// loggedValues returns vs as a log line may show them: redacted for
// sensitive headers, truncated when long.
func loggedValues(name string, vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		switch {
		case sensitive.MatchString(name):
			out[i] = "[redacted]"
		case len(v) > maxLoggedValue:
			out[i] = v[:maxLoggedValue] + "…"
		default:
			out[i] = v
		}
	}
	return out
}

// limiter lets one log line through per key and interval, and counts the
// occurrences in between, so that the line that does go out can say how
// many it stands for.
type limiter struct {
	every time.Duration
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*limitEntry
}

type limitEntry struct {
	last    time.Time
	pending int       // occurrences since the last line
	flush   func(int) // logs the pending occurrences at close
}

// maxLimiterKeys bounds the limiter's memory: upstreams choose header
// names. When full, it starts over (and may log a line early).
const maxLimiterKeys = 4096

func newLimiter(every time.Duration) *limiter {
	return &limiter{every: every, now: time.Now, m: map[string]*limitEntry{}}
}

// allow records one occurrence of key. It returns the count to report and
// true when a line may be logged now; flush logs a later line at close for
// occurrences that were counted but not logged.
func (l *limiter) allow(key string, flush func(count int)) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	e := l.m[key]
	if e == nil {
		if len(l.m) >= maxLimiterKeys {
			l.m = map[string]*limitEntry{}
		}
		l.m[key] = &limitEntry{last: now}
		return 1, true
	}
	e.pending++
	e.flush = flush
	if now.Sub(e.last) < l.every {
		return 0, false
	}
	n := e.pending
	e.pending, e.last, e.flush = 0, now, nil
	return n, true
}

// close logs every count still pending.
func (l *limiter) close() {
	l.mu.Lock()
	var flushes []func()
	for _, e := range l.m {
		if e.pending > 0 && e.flush != nil {
			n, f := e.pending, e.flush
			flushes = append(flushes, func() { f(n) })
			e.pending = 0
		}
	}
	l.mu.Unlock()
	for _, f := range flushes {
		f()
	}
}

// driftReporter counts every drift and logs it, rate-limited per route and
// header.
type driftReporter struct {
	log     *slog.Logger
	lim     *limiter
	counter *prometheus.CounterVec
}

// report counts and logs the drifts of one upstream response.
func (d *driftReporter) report(ctx context.Context, route string, status int, proto string, drifts []drift) {
	slices.SortFunc(drifts, func(a, b drift) int {
		if a.header < b.header {
			return -1
		}
		if a.header > b.header {
			return 1
		}
		return 0
	})
	for _, dr := range drifts {
		d.counter.WithLabelValues(headerLabel(dr.header), dr.kind).Inc()
		logLine := func(count int) {
			d.log.LogAttrs(ctx, slog.LevelWarn, "header drift",
				slog.String("route", route),
				slog.String("header", dr.header),
				slog.String("kind", dr.kind),
				slog.Any("upstream", loggedValues(dr.header, dr.upstream)),
				slog.String("policy", dr.policy),
				slog.Int("status", status),
				slog.String("client_proto", proto),
				slog.Int("count", count),
			)
		}
		if n, ok := d.lim.allow("drift\x00"+route+"\x00"+dr.header, logLine); ok {
			logLine(n)
		}
	}
}
