package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
)

// Defaults of Config. Each field's comment names its default too.
const (
	DefaultListen           = "127.0.0.1:8081"
	DefaultHeartbeat        = 15 * time.Second
	DefaultHeaderTimeout    = 10 * time.Second
	DefaultDialTimeout      = 5 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultRetryAfter       = 5 * time.Second
	DefaultMaxBodyBytes     = 1 << 20
	DefaultReadBodyTimeout  = 10 * time.Second
	DefaultDriftLogInterval = time.Minute
	DefaultSubjectHeader    = "X-Sseguard-Subject"
)

// Route kinds: what a route's upstream answers with.
const (
	// KindAuto judges each response by its Content-Type: streams get the
	// stream policy, JSON the JSON policy, and so on. Accept is checked
	// only once the upstream answered with a stream.
	KindAuto = "auto"
	// KindStream routes serve text/event-stream only: Accept is checked at
	// the edge, a 2xx of another type is refused with 502, and a missing
	// Content-Type is supplied.
	KindStream = "stream"
	// KindJSON routes serve JSON only (the polling fallback, publish).
	KindJSON = "json"
)

// Route auth modes.
const (
	// AuthNone passes requests without looking at credentials.
	AuthNone = "none"
	// AuthJWT requires a valid token (see Auth) before any upstream
	// request is made.
	AuthJWT = "jwt"
)

// DefaultResponseHeaders are the upstream response headers that reach the
// client besides the policy's own, which the proxy always sets itself.
// Everything else an upstream sends (Set-Cookie, Server, X-Powered-By,
// debug headers, its own CORS answers) is dropped and reported as drift.
// Content-Length, ETag and Last-Modified are then still removed from
// streams by the policy.
var DefaultResponseHeaders = []string{
	"Content-Type", "Content-Length", "Content-Language", "ETag", "Last-Modified",
}

// DefaultRequestHeaders are the client request headers sent upstream. The
// proxy adds Accept-Encoding: identity, X-Forwarded-For, -Host and -Proto,
// and the subject header; everything else (cookies, Authorization, client
// forwarding headers) stays at the edge unless listed.
var DefaultRequestHeaders = []string{
	"Accept", "Accept-Language", "Cache-Control", "Content-Type", "Idempotency-Key",
	"If-Modified-Since", "If-None-Match", "Last-Event-ID", "User-Agent",
}

// Config is the whole configuration of the proxy: one YAML file, whose
// keys are the yaml tags below. Every field has a safe zero value, and
// Fill sets the defaults; only an upstream is required.
type Config struct {
	// Listen is the address to serve on. Default 127.0.0.1:8081.
	Listen string `yaml:"listen"`
	// Upstream is the backend of every route that names none: an absolute
	// http or https URL, whose path (if any) prefixes every request path.
	Upstream string `yaml:"upstream"`
	// Policy holds profile (strict, the default, or baseline) and accept
	// (strict or lenient; default the profile's), as in serve's file.
	config.Policy `yaml:",inline"`
	// Fallback is the URL of the upstream's JSON polling fallback, put in
	// the fallback member of refusals. Default none.
	Fallback string `yaml:"fallback"`

	// Routes map path prefixes to upstreams; the longest matching prefix
	// wins and a path no route matches gets a 404 problem. Default: one
	// route, prefix "/", kind auto, to Upstream.
	Routes []Route `yaml:"routes"`

	// ResponseHeaders is the allowlist of upstream response headers that
	// reach the client. Default DefaultResponseHeaders; routes may add.
	ResponseHeaders []string `yaml:"response_headers"`
	// RequestHeaders is the allowlist of request headers sent upstream.
	// Default DefaultRequestHeaders.
	RequestHeaders []string `yaml:"request_headers"`

	// Heartbeat is how long a stream may sit idle before the proxy sends a
	// ": keep-alive" comment, at an event boundary only. Default 15s;
	// negative turns heartbeats off.
	Heartbeat config.Duration `yaml:"heartbeat"`
	// HeaderTimeout bounds the wait for the upstream's response header;
	// beyond it the client gets a 504 problem. Default 10s.
	HeaderTimeout config.Duration `yaml:"header_timeout"`
	// DialTimeout bounds connecting to the upstream. Default 5s.
	DialTimeout config.Duration `yaml:"dial_timeout"`
	// WriteTimeout bounds each write to the client, so a client that stops
	// reading cannot hold a stream. Default 10s.
	WriteTimeout config.Duration `yaml:"write_timeout"`
	// ShutdownTimeout bounds a graceful stop. Default 10s.
	ShutdownTimeout config.Duration `yaml:"shutdown_timeout"`
	// RetryAfter is sent with 502 and 504 problems. Default 5s.
	RetryAfter config.Duration `yaml:"retry_after"`
	// MaxBodyBytes bounds a request body sent upstream (413 beyond).
	// Default 1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RequestLimits holds max_header_bytes (default 16384),
	// read_header_timeout (default 10s) and read_body_timeout (default
	// 10s), as in serve's limits section. The body's time counts from the
	// end of the edge checks to its last byte, so that a client trickling
	// a body cannot hold the proxy and the upstream.
	config.RequestLimits `yaml:",inline"`
	// DriftLogInterval is the least time between two drift log lines for
	// one route and header; the lines in between are counted. Default 1m.
	DriftLogInterval config.Duration `yaml:"drift_log_interval"`
	// MetricsListen, when set, serves Prometheus metrics on /metrics at
	// this separate address. Default empty: off.
	MetricsListen string `yaml:"metrics_listen"`

	// Auth configures token verification for routes with auth jwt.
	Auth Auth `yaml:"auth"`
	// CORS is decided at the edge as the hub decides it: AllowedOrigins
	// is the global allowlist, and a cross-origin request is allowed only
	// when its Origin is there and in the token's origins, or in
	// AnonymousOrigins for routes without auth.
	CORS config.CORS `yaml:"cors"`
	// TLS serves HTTPS and HTTP/2. With client_ca_file, client_auth must
	// be require: only clients with a certificate from those CAs connect.
	// A certificate grants no principal; routes with auth jwt still want
	// a token.
	TLS config.TLS `yaml:"tls"`
	Log config.Log `yaml:"log"`
}

// Route is one path prefix and where it goes.
type Route struct {
	// Prefix is matched against the request path: "/events" matches
	// /events and /events/..., "/" matches everything.
	Prefix string `yaml:"prefix"`
	// Upstream is this route's backend. Default Config.Upstream.
	Upstream string `yaml:"upstream"`
	// Kind is auto (default), stream or json.
	Kind string `yaml:"kind"`
	// Auth is none (default) or jwt.
	Auth string `yaml:"auth"`
	// TopicParam, with auth jwt, names the query parameter that lists
	// topics: the token must allow subscribing to each. Default none.
	TopicParam string `yaml:"topic_param"`
	// StripPrefix removes Prefix from the path sent upstream.
	StripPrefix bool `yaml:"strip_prefix"`
	// Fallback overrides Config.Fallback for this route.
	Fallback string `yaml:"fallback"`
	// ResponseHeaders are allowed from this route's upstream on top of
	// Config.ResponseHeaders.
	ResponseHeaders []string `yaml:"response_headers"`
}

// Auth configures token verification at the edge, for routes with auth
// jwt. Tokens are verified by package auth.
type Auth struct {
	// Tokens holds the keys shared with serve's auth section: keys,
	// jwks_url, jwks_refresh, audience, issuer, leeway, cookie and
	// query_param. The query parameter is removed before the request goes
	// upstream.
	config.Tokens `yaml:",inline"`
	// SubjectHeader carries the verified subject upstream; a client's own
	// value is always removed. Default X-Sseguard-Subject.
	SubjectHeader string `yaml:"subject_header"`
}

// LoadConfig reads a configuration file; see ParseConfig.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig reads a configuration file's contents, refusing unknown
// keys. It neither fills defaults nor validates: call Fill and Validate.
// Its errors are config.Decode's: each a *config.FieldError with its line.
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	if err := config.Decode(data, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Fill sets every field left at its zero value to its default.
func (c *Config) Fill() {
	setStr(&c.Listen, DefaultListen)
	c.Policy.Fill()
	if len(c.Routes) == 0 {
		c.Routes = []Route{{Prefix: "/"}}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		setStr(&r.Upstream, c.Upstream)
		setStr(&r.Kind, KindAuto)
		setStr(&r.Auth, AuthNone)
		setStr(&r.Fallback, c.Fallback)
	}
	if c.ResponseHeaders == nil {
		c.ResponseHeaders = slices.Clone(DefaultResponseHeaders)
	}
	if c.RequestHeaders == nil {
		c.RequestHeaders = slices.Clone(DefaultRequestHeaders)
	}
	setDur(&c.Heartbeat, DefaultHeartbeat)
	setDur(&c.HeaderTimeout, DefaultHeaderTimeout)
	setDur(&c.DialTimeout, DefaultDialTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.ShutdownTimeout, DefaultShutdownTimeout)
	setDur(&c.RetryAfter, DefaultRetryAfter)
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	c.RequestLimits.Fill()
	setDur(&c.DriftLogInterval, DefaultDriftLogInterval)
	c.Auth.Tokens.Fill()
	setStr(&c.Auth.SubjectHeader, DefaultSubjectHeader)
	c.CORS.Fill()
	c.TLS.Fill()
	c.Log.Fill()
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setDur(p *config.Duration, v time.Duration) {
	if *p == 0 {
		*p = config.Duration(v)
	}
}

// notForwarded are headers no allowlist may name: connection-specific ones
// (stripped in both directions), the encoding the proxy negotiates itself,
// the forwarding headers it sets itself, and CORS answers, which the edge
// decides.
var notForwarded = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer",
	"Proxy-Authenticate", "Proxy-Authorization",
	"Accept-Encoding", "Content-Encoding", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
}

// Validate reports every configuration error, each a *config.FieldError
// naming its field. Call it after Fill. The sections shared with serve's
// file are checked by package config, so that they mean the same in both.
func (c *Config) Validate() error {
	errs := []error{c.Policy.Validate("")}
	pr := &problems{}
	if c.Upstream != "" {
		if err := checkUpstream(c.Upstream); err != nil {
			pr.add("upstream", "%v", err)
		}
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		switch {
		case !strings.HasPrefix(r.Prefix, "/"):
			pr.add(f+".prefix", "want a path starting with /, got %q", r.Prefix)
		case seen[r.Prefix] > 0:
			pr.add(f+".prefix", "%q is also routes[%d].prefix", r.Prefix, seen[r.Prefix]-1)
		}
		seen[r.Prefix] = i + 1
		if r.Upstream == "" {
			pr.add(f+".upstream", "no upstream: set --upstream, upstream, or this route's upstream")
		} else if err := checkUpstream(r.Upstream); err != nil && r.Upstream != c.Upstream {
			pr.add(f+".upstream", "%v", err)
		}
		if !slices.Contains([]string{KindAuto, KindStream, KindJSON}, r.Kind) {
			pr.add(f+".kind", "want auto, stream or json, got %q", r.Kind)
		}
		switch r.Auth {
		case AuthNone:
			if r.TopicParam != "" {
				pr.add(f+".topic_param", "needs auth: jwt")
			}
		case AuthJWT:
			if len(c.Auth.Keys) == 0 && c.Auth.JWKSURL == "" {
				pr.add(f+".auth", "jwt needs auth.keys or auth.jwks_url")
			}
		default:
			pr.add(f+".auth", "want none or jwt, got %q", r.Auth)
		}
		checkHeaderList(pr, f+".response_headers", r.ResponseHeaders, c.Auth.SubjectHeader)
	}
	checkHeaderList(pr, "response_headers", c.ResponseHeaders, "")
	checkHeaderList(pr, "request_headers", c.RequestHeaders, c.Auth.SubjectHeader)
	for _, d := range []struct {
		name string
		v    config.Duration
	}{
		{"header_timeout", c.HeaderTimeout}, {"dial_timeout", c.DialTimeout}, {"write_timeout", c.WriteTimeout},
		{"shutdown_timeout", c.ShutdownTimeout}, {"retry_after", c.RetryAfter}, {"drift_log_interval", c.DriftLogInterval},
	} {
		if d.v < 0 {
			pr.add(d.name, "must not be negative")
		}
	}
	if c.MaxBodyBytes < 0 {
		pr.add("max_body_bytes", "must not be negative")
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			pr.add("metrics_listen", "want host:port, got %q", c.MetricsListen)
		}
	}
	errs = append(errs, pr.err(), c.RequestLimits.Validate(""), c.Auth.Tokens.Validate("auth"))
	pr = &problems{}
	if !policy.IsToken(c.Auth.SubjectHeader) {
		pr.add("auth.subject_header", "%q is not a header name", c.Auth.SubjectHeader)
	}
	errs = append(errs, pr.err(), c.CORS.Validate("cors"), c.TLS.Validate("tls"))
	pr = &problems{}
	// The proxy maps no certificate to a principal: a certificate only
	// admits a connection, which "optional" would never refuse.
	if c.TLS.ClientCAFile != "" && c.TLS.ClientAuth != "require" {
		pr.add("tls.client_auth", "the proxy uses client certificates only to admit connections: set require (%q would verify a certificate and grant nothing for it)", c.TLS.ClientAuth)
	}
	errs = append(errs, pr.err(), c.Log.Validate("log"))
	return config.Flatten(errs)
}

// problems collects the *config.FieldError values of one validation.
type problems struct{ errs []error }

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &config.FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func checkUpstream(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http or https URL, such as http://127.0.0.1:3000", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: no query, fragment or user info", s)
	}
	return nil
}

func checkHeaderList(pr *problems, field string, names []string, subject string) {
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !policy.IsToken(n):
			pr.add(f, "%q is not a header name", n)
		case slices.Contains(notForwarded, http.CanonicalHeaderKey(n)):
			pr.add(f, "%s is never forwarded: the proxy handles it", n)
		case strings.HasPrefix(http.CanonicalHeaderKey(n), "Access-Control-"):
			pr.add(f, "%s is decided at the edge (cors), never by the upstream", n)
		case subject != "" && strings.EqualFold(n, subject):
			pr.add(f, "%s is auth.subject_header: the proxy sets it from the verified token", n)
		}
	}
}
