package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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
	// Profile is the header policy: strict (default) or baseline.
	Profile string `yaml:"profile"`
	// Accept overrides the profile's Accept mode: strict or lenient.
	Accept string `yaml:"accept"`
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
	// MaxHeaderBytes bounds a request's header. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds reading a request's header. Default 10s.
	ReadHeaderTimeout config.Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds reading a request's body, from the end of the
	// edge checks to its last byte, so that a client trickling a body
	// cannot hold the proxy and the upstream; beyond it the client gets a
	// 408 problem. Default 10s.
	ReadBodyTimeout config.Duration `yaml:"read_body_timeout"`
	// DriftLogInterval is the least time between two drift log lines for
	// one route and header; the lines in between are counted. Default 1m.
	DriftLogInterval config.Duration `yaml:"drift_log_interval"`
	// MetricsListen, when set, serves Prometheus metrics on /metrics at
	// this separate address. Default empty: off.
	MetricsListen string `yaml:"metrics_listen"`

	Auth Auth       `yaml:"auth"`
	CORS CORS       `yaml:"cors"`
	TLS  config.TLS `yaml:"tls"`
	Log  config.Log `yaml:"log"`
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
	// Keys are the verification keys, each with its pinned algorithm.
	Keys []config.Key `yaml:"keys"`
	// JWKSURL is a JWKS to verify tokens with: an https URL, an http URL
	// on loopback, or a file path.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is how often the JWKS is fetched again. Default 15m.
	JWKSRefresh config.Duration `yaml:"jwks_refresh"`
	// Audience, when set, lists the aud values accepted (any one).
	Audience []string `yaml:"audience"`
	// Issuer, when set, is the only iss accepted.
	Issuer string `yaml:"issuer"`
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s.
	Leeway config.Duration `yaml:"leeway"`
	// Cookie is the cookie that may carry the token. Default sseguard_token.
	Cookie string `yaml:"cookie"`
	// QueryParam lets the token come from this query parameter; it is
	// removed before the request goes upstream. Default empty: off.
	QueryParam string `yaml:"query_param"`
	// SubjectHeader carries the verified subject upstream; a client's own
	// value is always removed. Default X-Sseguard-Subject.
	SubjectHeader string `yaml:"subject_header"`
}

// CORS configures cross-origin access, decided at the edge as the hub does.
type CORS struct {
	// AllowedOrigins is the global allowlist. A cross-origin request is
	// allowed only when its Origin is here and in the token's origins (or
	// AnonymousOrigins for routes without auth). Default empty.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AnonymousOrigins may read routes without auth cross-origin.
	AnonymousOrigins []string `yaml:"anonymous_origins"`
	// MaxAge is how long browsers may cache a preflight answer. Default 10m.
	MaxAge config.Duration `yaml:"max_age"`
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
func ParseConfig(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if !errors.Is(dec.Decode(new(yaml.Node)), io.EOF) {
		return nil, errors.New("want one YAML document, found more after ---")
	}
	return c, nil
}

// Fill sets every field left at its zero value to its default.
func (c *Config) Fill() {
	setStr(&c.Listen, DefaultListen)
	setStr(&c.Profile, "strict")
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
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	setDur(&c.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.ReadBodyTimeout, DefaultReadBodyTimeout)
	setDur(&c.DriftLogInterval, DefaultDriftLogInterval)
	setDur(&c.Auth.JWKSRefresh, 15*time.Minute)
	setStr(&c.Auth.SubjectHeader, DefaultSubjectHeader)
	setDur(&c.CORS.MaxAge, 10*time.Minute)
	setStr(&c.Log.Level, "info")
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

// Validate reports every configuration error, each naming its field. Call
// it after Fill.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, err := policy.Lookup(c.Profile); err != nil {
		bad("profile", "want strict or baseline, got %q", c.Profile)
	}
	if c.Accept != "" && c.Accept != "strict" && c.Accept != "lenient" {
		bad("accept", "want strict or lenient, got %q", c.Accept)
	}
	if c.Upstream != "" {
		if err := checkUpstream(c.Upstream); err != nil {
			bad("upstream", "%v", err)
		}
	}
	seen := map[string]int{}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		switch {
		case !strings.HasPrefix(r.Prefix, "/"):
			bad(f+".prefix", "want a path starting with /, got %q", r.Prefix)
		case seen[r.Prefix] > 0:
			bad(f+".prefix", "%q is also routes[%d].prefix", r.Prefix, seen[r.Prefix]-1)
		}
		seen[r.Prefix] = i + 1
		if r.Upstream == "" {
			bad(f+".upstream", "no upstream: set --upstream, upstream, or this route's upstream")
		} else if err := checkUpstream(r.Upstream); err != nil && r.Upstream != c.Upstream {
			bad(f+".upstream", "%v", err)
		}
		if !slices.Contains([]string{KindAuto, KindStream, KindJSON}, r.Kind) {
			bad(f+".kind", "want auto, stream or json, got %q", r.Kind)
		}
		switch r.Auth {
		case AuthNone:
			if r.TopicParam != "" {
				bad(f+".topic_param", "needs auth: jwt")
			}
		case AuthJWT:
			if len(c.Auth.Keys) == 0 && c.Auth.JWKSURL == "" {
				bad(f+".auth", "jwt needs auth.keys or auth.jwks_url")
			}
		default:
			bad(f+".auth", "want none or jwt, got %q", r.Auth)
		}
		checkHeaderList(bad, f+".response_headers", r.ResponseHeaders, c.Auth.SubjectHeader)
	}
	checkHeaderList(bad, "response_headers", c.ResponseHeaders, "")
	checkHeaderList(bad, "request_headers", c.RequestHeaders, c.Auth.SubjectHeader)
	for _, d := range []struct {
		name string
		v    config.Duration
	}{
		{"header_timeout", c.HeaderTimeout}, {"dial_timeout", c.DialTimeout}, {"write_timeout", c.WriteTimeout},
		{"shutdown_timeout", c.ShutdownTimeout}, {"retry_after", c.RetryAfter}, {"read_header_timeout", c.ReadHeaderTimeout}, {"read_body_timeout", c.ReadBodyTimeout},
		{"drift_log_interval", c.DriftLogInterval},
	} {
		if d.v < 0 {
			bad(d.name, "must not be negative")
		}
	}
	if c.MaxBodyBytes < 0 {
		bad("max_body_bytes", "must not be negative")
	}
	for i, k := range c.Auth.Keys {
		f := fmt.Sprintf("auth.keys[%d]", i)
		switch {
		case strings.HasPrefix(k.Algorithm, "HS") && (k.SecretFile == "" || k.PublicKeyFile != ""):
			bad(f, "%s needs secret_file and no public_key_file", k.Algorithm)
		case !strings.HasPrefix(k.Algorithm, "HS") && (k.PublicKeyFile == "" || k.SecretFile != ""):
			bad(f, "%q needs public_key_file and no secret_file", k.Algorithm)
		}
	}
	if !policy.IsToken(c.Auth.SubjectHeader) {
		bad("auth.subject_header", "%q is not a header name", c.Auth.SubjectHeader)
	}
	for _, list := range []struct {
		name string
		v    []string
	}{{"cors.allowed_origins", c.CORS.AllowedOrigins}, {"cors.anonymous_origins", c.CORS.AnonymousOrigins}} {
		for i, o := range list.v {
			if u, err := url.Parse(o); o == "*" || o == "null" || err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
				bad(fmt.Sprintf("%s[%d]", list.name, i), "want an origin such as https://app.example, got %q", o)
			}
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.TLS.ClientCAFile != "" || c.TLS.ClientAuth != "" {
		bad("tls.client_ca_file", "client certificates are not supported by the proxy; use tokens (auth)")
	}
	if f := c.Log.Format; f != "" && f != "json" && f != "text" {
		bad("log.format", "want json or text, got %q", f)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	return errors.Join(errs...)
}

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

func checkHeaderList(bad func(string, string, ...any), field string, names []string, subject string) {
	for i, n := range names {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !policy.IsToken(n):
			bad(f, "%q is not a header name", n)
		case slices.Contains(notForwarded, http.CanonicalHeaderKey(n)):
			bad(f, "%s is never forwarded: the proxy handles it", n)
		case strings.HasPrefix(http.CanonicalHeaderKey(n), "Access-Control-"):
			bad(f, "%s is decided at the edge (cors), never by the upstream", n)
		case subject != "" && strings.EqualFold(n, subject):
			bad(f, "%s is auth.subject_header: the proxy sets it from the verified token", n)
		}
	}
}
