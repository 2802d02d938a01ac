// Package config is sseguard's configuration: one YAML file format, with
// flags and environment variables that override it, validated at start
// with errors that name the field.
//
// Every field has a safe default, so an empty file (or none) is a working
// configuration: docs/configuration.md lists each key with its default, and
// testdata/full.yaml holds them all.
//
// Package config reads and checks settings; it does not act on them.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
)

// Duration is a time.Duration written as "15s", "2m" or "24h" in the file.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if n.Kind != yaml.ScalarNode || err != nil {
		// A TypeError, unlike other errors, carries the line and lets the
		// decoder go on to report every bad value at once.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as \"15s\", got %s", n.Line, nodeText(n))}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string, "24h" rather than "24h0m0s".
func (d Duration) MarshalYAML() (any, error) {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s, nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Config is the whole configuration of sseguard serve.
type Config struct {
	// Listen is the address to serve on. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// Data is the folder for the embedded store and the signing secret.
	// Default ./sseguard-data.
	Data string `yaml:"data"`
	// Profile is the header policy: strict (default) or baseline.
	Profile string `yaml:"profile"`
	// Accept overrides the profile's Accept mode: strict or lenient.
	Accept string `yaml:"accept"`
	// ShutdownTimeout bounds a graceful stop. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	Store     Store     `yaml:"store"`
	Stream    Stream    `yaml:"stream"`
	Poll      Poll      `yaml:"poll"`
	Publish   Publish   `yaml:"publish"`
	Auth      Auth      `yaml:"auth"`
	CORS      CORS      `yaml:"cors"`
	TLS       TLS       `yaml:"tls"`
	Limits    Limits    `yaml:"limits"`
	Telemetry Telemetry `yaml:"telemetry"`
	Dashboard Dashboard `yaml:"dashboard"`
	Log       Log       `yaml:"log"`
}

// Dashboard configures the live dashboard at /dashboard.
type Dashboard struct {
	// InsecureCookie lets the dashboard's login cookie go without the
	// Secure attribute, for a dashboard reached over plain HTTP from
	// another machine. Default false: the cookie is Secure (browsers still
	// keep it on http://localhost and http://127.0.0.1).
	InsecureCookie bool `yaml:"insecure_cookie"`
}

// Telemetry configures metrics and the refusal-spike alarm.
type Telemetry struct {
	// MetricsListen serves /metrics on this separate address (an internal
	// port) instead of the main listener. Default empty: the main one.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsPublic serves /metrics on the main listener to any client.
	// Default false: there it answers loopback clients only (use
	// metrics_listen for a scraper elsewhere).
	MetricsPublic bool `yaml:"metrics_public"`
	// SpikeFactor: a refusal spike is a last-minute rate above this many
	// times the baseline. Default 3.
	SpikeFactor float64 `yaml:"spike_factor"`
	// SpikeFloor: and above this many refusals per minute. Default 30.
	SpikeFloor float64 `yaml:"spike_floor"`
	// SpikeHalfLife is how fast the baseline follows the rate. Default 10m.
	SpikeHalfLife Duration `yaml:"spike_half_life"`
	// SpikeLearn is how long after start the alarm only learns the
	// baseline. Default 1m, the most.
	SpikeLearn Duration `yaml:"spike_learn"`
}

// Store configures event storage.
type Store struct {
	// Driver is bolt (default, durable, in Data) or memory (lost on exit).
	Driver string `yaml:"driver"`
	// MaxEventsPerTopic bounds history per topic. Default 10000; 0 keeps all.
	MaxEventsPerTopic *int `yaml:"max_events_per_topic"`
	// MaxAge drops older events. Default 24h; 0s keeps them.
	MaxAge *Duration `yaml:"max_age"`
	// IdempotencyWindow is how long Idempotency-Key values are remembered.
	// Default 24h.
	IdempotencyWindow Duration `yaml:"idempotency_window"`
	// SkipCheck skips the consistency check of events.db at start (it
	// reads the whole file: about 0.1 s per 100k events). Default false.
	SkipCheck bool `yaml:"skip_check"`
}

// Stream configures GET /events.
type Stream struct {
	// Heartbeat is the idle time before a keep-alive comment. Default 15s.
	Heartbeat Duration `yaml:"heartbeat"`
	// Retry is the reconnection time sent at start. Default 3s.
	Retry Duration `yaml:"retry"`
	// WriteTimeout cuts off a client that stops reading. Default 10s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// QueueBytes bounds the bytes waiting for one subscriber before it is
	// cut off (it reconnects and catches up from the store). Default 1048576.
	QueueBytes int `yaml:"queue_bytes"`
	// MaxTopics bounds the topics of one stream. Default 32.
	MaxTopics int `yaml:"max_topics"`
	// ReplayBytes bounds the bytes of history that all replays and polls
	// together may hold in memory at once; a replay waits for room.
	// Default 67108864 (64 MiB).
	ReplayBytes int `yaml:"replay_bytes"`
}

// Poll configures GET /api/poll.
type Poll struct {
	// MaxWait caps the wait parameter of long polls. Default 30s.
	MaxWait Duration `yaml:"max_wait"`
	// MaxEvents caps the events of one answer. Default 100.
	MaxEvents int `yaml:"max_events"`
	// Retry is the retry hint returned to pollers. Default 1s.
	Retry Duration `yaml:"retry"`
}

// Publish configures POST /api/publish.
type Publish struct {
	// MaxBodyBytes bounds a publish request body (413 beyond). Default 1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDataBytes bounds one event's data (413 beyond). Default 65536.
	MaxDataBytes int `yaml:"max_data_bytes"`
}

// Auth configures tokens.
type Auth struct {
	// SecretFile holds the HS256 secret; serve creates it (32 random
	// bytes, mode 0600) when missing, token never does. Default
	// <data>/secret.key.
	SecretFile string `yaml:"secret_file"`
	// Cookie is the cookie that may carry the token. Default sseguard_token.
	Cookie string `yaml:"cookie"`
	// QueryParam lets the token come from this query parameter. Default
	// empty: off, because URLs are logged by proxies.
	QueryParam string `yaml:"query_param"`
	// AnonymousSubscribe are topic patterns anyone may read without a token.
	// Default [demo]; set [] in production.
	AnonymousSubscribe *[]string `yaml:"anonymous_subscribe"`
	// Keys are more verification keys, each with its pinned algorithm.
	// Default none (only the secret_file HS256 key).
	Keys []Key `yaml:"keys"`
	// JWKSURL is a JWKS to verify tokens with: an https URL, an http URL
	// whose host is a loopback address or localhost, or a file path; plain
	// http to another host is refused. Default empty: none.
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is how often the JWKS is fetched again. Default 15m.
	JWKSRefresh Duration `yaml:"jwks_refresh"`
	// Audience, when set, is the list of aud values accepted (any one).
	// Default empty: aud is not checked.
	Audience []string `yaml:"audience"`
	// Issuer, when set, is the only iss accepted. Default empty: not checked.
	Issuer string `yaml:"issuer"`
	// Leeway tolerates clock skew on exp, nbf and iat. Default 30s.
	Leeway Duration `yaml:"leeway"`
	// JTIOnce refuses a publish whose token's jti was already used, for
	// publisher tokens that must be single-use. Default false.
	JTIOnce bool `yaml:"jti_once"`
	// ClientCerts maps verified client certificates (tls.client_ca_file)
	// to permissions. Default none.
	ClientCerts []CertRule `yaml:"client_certs"`
}

// Key is one token verification key.
type Key struct {
	// ID is the kid it matches; empty matches tokens without a kid.
	ID string `yaml:"id"`
	// Algorithm is pinned: HS256, HS384, HS512, RS256, PS256, ES256, ES384
	// or EdDSA.
	Algorithm string `yaml:"algorithm"`
	// SecretFile holds the HMAC secret (HS*), at least 32 bytes.
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFile holds a PEM public key or certificate (RS*, PS*, ES*,
	// EdDSA).
	PublicKeyFile string `yaml:"public_key_file"`
}

// CertRule grants permissions to a client certificate.
type CertRule struct {
	// Principal is matched against the certificate's SAN URIs, then SAN
	// DNS names, then subject CN.
	Principal string `yaml:"principal"`
	// Subscribe, Publish and Origins are as in a token's sseguard claim.
	Subscribe []string `yaml:"subscribe"`
	Publish   []string `yaml:"publish"`
	Origins   []string `yaml:"origins"`
}

// CORS configures cross-origin access.
type CORS struct {
	// AllowedOrigins is the global allowlist of browser origins
	// ("https://app.example"). A cross-origin request is allowed only when
	// its Origin is here and in the principal's origins. Default empty:
	// same-origin only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AnonymousOrigins are the origins that may read anonymous topics
	// cross-origin (they must also be in allowed_origins). Default empty.
	AnonymousOrigins []string `yaml:"anonymous_origins"`
	// MaxAge is how long browsers may cache a preflight answer. Default 10m.
	MaxAge Duration `yaml:"max_age"`
}

// TLS configures HTTPS and client certificates.
type TLS struct {
	// CertFile and KeyFile enable HTTPS (and HTTP/2). Default empty: HTTP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile enables mTLS: client certificates signed by these CAs
	// are verified and mapped by auth.client_certs. Default empty: off.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is optional (a certificate is verified if sent) or require.
	// Default optional.
	ClientAuth string `yaml:"client_auth"`
}

// Limits bound what one client may hold or do. Each refusal is a problem
// response (429 or 413) and is counted.
type Limits struct {
	// StreamsPerPrincipal bounds the open streams of one token subject or
	// certificate. Default 1000; 0 means no limit.
	StreamsPerPrincipal *int `yaml:"streams_per_principal"`
	// StreamsPerIP bounds the open streams of one client address. Default
	// 5000; 0 means no limit.
	StreamsPerIP *int `yaml:"streams_per_ip"`
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed when
	// finding the client address. Default empty: the TCP peer address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// PublishRate is the publishes per second one principal may sustain.
	// Default 1000; 0 means no limit.
	PublishRate *float64 `yaml:"publish_rate"`
	// PublishBurst is how many publishes may come at once. Default 2000.
	PublishBurst int `yaml:"publish_burst"`
	// MaxHeaderBytes bounds a request's header. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds the time to read a request's header
	// (slowloris). Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds the time to read a request's body on every
	// endpoint that takes one (slow bodies). Default 10s.
	ReadBodyTimeout Duration `yaml:"read_body_timeout"`
}

// Log configures logging.
type Log struct {
	// Format is json or text. Default: text on a terminal, json otherwise.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// Default returns the configuration with every default filled in.
func Default() *Config {
	c := &Config{}
	c.fill()
	return c
}

func (c *Config) fill() {
	setStr(&c.Listen, "127.0.0.1:8080")
	setStr(&c.Data, "./sseguard-data")
	setStr(&c.Profile, "strict")
	setDur(&c.ShutdownTimeout, 10*time.Second)
	setStr(&c.Store.Driver, "bolt")
	if c.Store.MaxEventsPerTopic == nil {
		n := 10000
		c.Store.MaxEventsPerTopic = &n
	}
	if c.Store.MaxAge == nil {
		d := Duration(24 * time.Hour)
		c.Store.MaxAge = &d
	}
	setDur(&c.Store.IdempotencyWindow, 24*time.Hour)
	setDur(&c.Stream.Heartbeat, 15*time.Second)
	setDur(&c.Stream.Retry, 3*time.Second)
	setDur(&c.Stream.WriteTimeout, 10*time.Second)
	setInt(&c.Stream.QueueBytes, 1<<20)
	setInt(&c.Stream.MaxTopics, 32)
	setInt(&c.Stream.ReplayBytes, 64<<20)
	setDur(&c.Poll.MaxWait, 30*time.Second)
	setInt(&c.Poll.MaxEvents, 100)
	setDur(&c.Poll.Retry, time.Second)
	if c.Publish.MaxBodyBytes == 0 {
		c.Publish.MaxBodyBytes = 1 << 20
	}
	setInt(&c.Publish.MaxDataBytes, 64<<10)
	setStr(&c.Auth.Cookie, "sseguard_token")
	if c.Auth.AnonymousSubscribe == nil {
		c.Auth.AnonymousSubscribe = &[]string{"demo"}
	}
	// An empty list in the file means the same as none.
	nilIfEmpty(&c.Auth.Keys)
	nilIfEmpty(&c.Auth.Audience)
	nilIfEmpty(&c.Auth.ClientCerts)
	nilIfEmpty(&c.CORS.AllowedOrigins)
	nilIfEmpty(&c.CORS.AnonymousOrigins)
	nilIfEmpty(&c.Limits.TrustedProxies)
	setDur(&c.Auth.JWKSRefresh, 15*time.Minute)
	setDur(&c.Auth.Leeway, 30*time.Second)
	setDur(&c.CORS.MaxAge, 10*time.Minute)
	setStr(&c.TLS.ClientAuth, "optional")
	if c.Limits.StreamsPerPrincipal == nil {
		n := 1000
		c.Limits.StreamsPerPrincipal = &n
	}
	if c.Limits.StreamsPerIP == nil {
		n := 5000
		c.Limits.StreamsPerIP = &n
	}
	if c.Limits.PublishRate == nil {
		r := 1000.0
		c.Limits.PublishRate = &r
	}
	setInt(&c.Limits.PublishBurst, 2000)
	setInt(&c.Limits.MaxHeaderBytes, 16<<10)
	setDur(&c.Limits.ReadHeaderTimeout, 10*time.Second)
	setDur(&c.Limits.ReadBodyTimeout, 10*time.Second)
	if c.Telemetry.SpikeFactor == 0 {
		c.Telemetry.SpikeFactor = 3
	}
	if c.Telemetry.SpikeFloor == 0 {
		c.Telemetry.SpikeFloor = 30
	}
	setDur(&c.Telemetry.SpikeHalfLife, 10*time.Minute)
	setDur(&c.Telemetry.SpikeLearn, time.Minute)
	setStr(&c.Log.Level, "info")
}

// SecretPath returns where the signing secret lives.
func (c *Config) SecretPath() string {
	if c.Auth.SecretFile != "" {
		return c.Auth.SecretFile
	}
	return strings.TrimRight(c.Data, "/") + "/secret.key"
}

func nilIfEmpty[T any](p *[]T) {
	if len(*p) == 0 {
		*p = nil
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func setDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}

// Parse reads a configuration file's contents, rejecting unknown keys, and
// fills in defaults. It does not validate; call Validate.
//
// A key of the wrong type, an unknown key or a repeated key is a
// *FieldError with its line; all of them are reported, joined.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if errors.Is(err, io.EOF) { // an empty file
		err = nil
	} else if err == nil && !errors.Is(dec.Decode(new(yaml.Node)), io.EOF) {
		return nil, errors.New("config: want one YAML document, found more after ---")
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return nil, fieldErrors(data, te)
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c.fill()
	return c, nil
}

var (
	unknownKeyRE = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	wrongTypeRE  = regexp.MustCompile("(?s)^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
	repeatedRE   = regexp.MustCompile(`^mapping key ".*" already defined at line (\d+)$`)
	lineRE       = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
)

// fieldErrors turns the decoder's "line 3: field x not found in type
// config.Stream" into "line 3: stream.x: unknown key; ...", naming the key
// the way the file and the docs do.
func fieldErrors(data []byte, te *yaml.TypeError) error {
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root) // it parsed once already
	paths := map[int]string{}
	keyPaths(&root, "", paths)
	keys := map[string][]string{}
	knownKeys(reflect.TypeFor[Config](), keys)

	var errs []error
	for _, msg := range te.Errors {
		fe := &FieldError{Problem: msg}
		if m := lineRE.FindStringSubmatch(msg); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Field, fe.Problem = paths[fe.Line], m[2]
		}
		if m := unknownKeyRE.FindStringSubmatch(fe.Problem); m != nil {
			fe.Problem = "unknown key; want one of " + strings.Join(keys[m[2]], ", ")
		} else if m := wrongTypeRE.FindStringSubmatch(fe.Problem); m != nil {
			got := map[string]string{"seq": "a list", "map": "a mapping"}[m[1]]
			if got == "" {
				got = strconv.Quote(m[2])
			}
			fe.Problem = "want " + typeText(m[3]) + ", got " + got
		} else if m := repeatedRE.FindStringSubmatch(fe.Problem); m != nil {
			fe.Problem = "repeated key, first set at line " + m[1]
		}
		errs = append(errs, fe)
	}
	return errors.Join(errs...)
}

// keyPaths records, for each line, the dotted path of the first key or
// list item on it ("stream.heartbeat", "auth.anonymous_subscribe[1]").
func keyPaths(n *yaml.Node, path string, m map[int]string) {
	at := func(line int, p string) {
		if _, ok := m[line]; !ok {
			m[line] = p
		}
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, path, m)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			at(n.Content[i].Line, p)
			keyPaths(n.Content[i+1], p, m)
		}
	case yaml.SequenceNode:
		if path == "" { // a list where the file's mapping belongs
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			at(c.Line, p)
			keyPaths(c, p, m)
		}
	default:
		at(n.Line, path)
	}
}

// knownKeys maps each struct type name ("config.Stream") to its keys.
func knownKeys(t reflect.Type, m map[string][]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		m[t.String()] = append(m[t.String()], f.Tag.Get("yaml"))
		if f.Type.Kind() == reflect.Struct {
			knownKeys(f.Type, m)
		}
	}
}

func typeText(goType string) string {
	switch goType {
	case "int", "int64":
		return "an integer"
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	}
	if strings.HasPrefix(goType, "config.") {
		return "a mapping"
	}
	return goType
}

func nodeText(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return strconv.Quote(n.Value)
}

// Load reads and parses the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// FieldError is a failure of one field, named by its path in the file (for
// example "stream.heartbeat"). Parse sets Line; Validate leaves it 0.
type FieldError struct {
	Field, Problem string
	Line           int
}

func (e *FieldError) Error() string {
	s := e.Problem
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// Validate checks every field and returns all problems found, joined; each
// is a *FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "want host:port, got %q", c.Listen)
	}
	if _, err := policy.Lookup(c.Profile); err != nil {
		bad("profile", "want strict or baseline, got %q", c.Profile)
	}
	switch c.Accept {
	case "", "strict", "lenient":
	default:
		bad("accept", "want strict or lenient, got %q", c.Accept)
	}
	positive := map[string]Duration{
		"shutdown_timeout":           c.ShutdownTimeout,
		"store.idempotency_window":   c.Store.IdempotencyWindow,
		"stream.heartbeat":           c.Stream.Heartbeat,
		"stream.retry":               c.Stream.Retry,
		"stream.write_timeout":       c.Stream.WriteTimeout,
		"poll.max_wait":              c.Poll.MaxWait,
		"poll.retry":                 c.Poll.Retry,
		"auth.jwks_refresh":          c.Auth.JWKSRefresh,
		"auth.leeway":                c.Auth.Leeway,
		"cors.max_age":               c.CORS.MaxAge,
		"limits.read_header_timeout": c.Limits.ReadHeaderTimeout,
		"limits.read_body_timeout":   c.Limits.ReadBodyTimeout,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] < 0 {
			bad(name, "must not be negative")
		}
	}
	if c.Poll.MaxWait.D() > 5*time.Minute {
		bad("poll.max_wait", "at most 5m, got %s", c.Poll.MaxWait.D())
	}
	switch c.Store.Driver {
	case "bolt", "memory":
	default:
		bad("store.driver", "want bolt or memory, got %q", c.Store.Driver)
	}
	// The pointers are nil only in a Config built by hand, without Parse
	// or Default.
	if n := c.Store.MaxEventsPerTopic; n != nil && *n < 0 {
		bad("store.max_events_per_topic", "must not be negative")
	}
	if d := c.Store.MaxAge; d != nil && *d < 0 {
		bad("store.max_age", "must not be negative")
	}
	if c.Stream.QueueBytes < 4096 {
		bad("stream.queue_bytes", "at least 4096, got %d", c.Stream.QueueBytes)
	}
	if c.Stream.ReplayBytes < c.Stream.QueueBytes {
		bad("stream.replay_bytes", "at least stream.queue_bytes (%d), got %d", c.Stream.QueueBytes, c.Stream.ReplayBytes)
	}
	if c.Stream.MaxTopics < 1 || c.Stream.MaxTopics > 1024 {
		bad("stream.max_topics", "want 1 to 1024, got %d", c.Stream.MaxTopics)
	}
	if c.Poll.MaxEvents < 1 || c.Poll.MaxEvents > 10000 {
		bad("poll.max_events", "want 1 to 10000, got %d", c.Poll.MaxEvents)
	}
	if c.Publish.MaxBodyBytes < 1024 {
		bad("publish.max_body_bytes", "at least 1024, got %d", c.Publish.MaxBodyBytes)
	}
	if c.Publish.MaxDataBytes < 1 || int64(c.Publish.MaxDataBytes) > c.Publish.MaxBodyBytes {
		bad("publish.max_data_bytes", "want 1 to publish.max_body_bytes (%d), got %d", c.Publish.MaxBodyBytes, c.Publish.MaxDataBytes)
	}
	if c.Auth.Cookie == "" || strings.ContainsAny(c.Auth.Cookie, " ;=,\t\r\n") {
		bad("auth.cookie", "want a cookie name, got %q", c.Auth.Cookie)
	}
	if strings.ContainsAny(c.Auth.QueryParam, "&=#? ") {
		bad("auth.query_param", "want a query parameter name, got %q", c.Auth.QueryParam)
	}
	var anonymous []string
	if c.Auth.AnonymousSubscribe != nil {
		anonymous = *c.Auth.AnonymousSubscribe
	}
	for i, p := range anonymous {
		if p == "" || (strings.Contains(p, "*") && !strings.HasSuffix(p, "*")) || strings.Count(p, "*") > 1 {
			bad(fmt.Sprintf("auth.anonymous_subscribe[%d]", i), "want a topic or a prefix ending in *, got %q", p)
		}
	}
	c.validateIdentity(bad)
	if c.Telemetry.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.Telemetry.MetricsListen); err != nil {
			bad("telemetry.metrics_listen", "want host:port, got %q", c.Telemetry.MetricsListen)
		}
	}
	if c.Telemetry.SpikeFactor < 1 {
		bad("telemetry.spike_factor", "at least 1, got %g", c.Telemetry.SpikeFactor)
	}
	if c.Telemetry.SpikeFloor < 0 {
		bad("telemetry.spike_floor", "must not be negative")
	}
	if c.Telemetry.SpikeLearn < 0 || c.Telemetry.SpikeLearn.D() > time.Minute {
		bad("telemetry.spike_learn", "want 0s to 1m, got %s", c.Telemetry.SpikeLearn.D())
	}
	if c.Telemetry.SpikeHalfLife < 0 {
		bad("telemetry.spike_half_life", "must not be negative")
	}
	switch c.Log.Format {
	case "", "json", "text":
	default:
		bad("log.format", "want json or text, got %q", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	return errors.Join(errs...)
}

// ProfileFor returns the header profile the configuration selects, with
// the Accept override and the poll fallback applied.
func (c *Config) ProfileFor() *policy.Profile {
	base, err := policy.Lookup(c.Profile)
	if err != nil {
		base = policy.Strict
	}
	p := base.Clone()
	switch c.Accept {
	case "strict":
		p.Accept = policy.AcceptStrict
	case "lenient":
		p.Accept = policy.AcceptLenient
	}
	return p
}

// algorithms are the token algorithms a key may be pinned to.
var algorithms = []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"}

// validateIdentity checks the auth, cors, tls and limits sections.
func (c *Config) validateIdentity(bad func(field, format string, args ...any)) {
	for i, k := range c.Auth.Keys {
		f := fmt.Sprintf("auth.keys[%d]", i)
		switch {
		case !slices.Contains(algorithms, k.Algorithm):
			bad(f+".algorithm", "want one of %s, got %q", strings.Join(algorithms, ", "), k.Algorithm)
		case strings.HasPrefix(k.Algorithm, "HS") && (k.SecretFile == "" || k.PublicKeyFile != ""):
			bad(f, "an %s key needs secret_file and no public_key_file", k.Algorithm)
		case !strings.HasPrefix(k.Algorithm, "HS") && (k.PublicKeyFile == "" || k.SecretFile != ""):
			bad(f, "an %s key needs public_key_file and no secret_file", k.Algorithm)
		}
	}
	if c.Auth.JWKSURL != "" {
		if err := auth.CheckJWKSURL(c.Auth.JWKSURL); err != nil {
			bad("auth.jwks_url", "%v", err)
		}
	}
	for i, a := range c.Auth.Audience {
		if a == "" {
			bad(fmt.Sprintf("auth.audience[%d]", i), "must not be empty")
		}
	}
	for i, r := range c.Auth.ClientCerts {
		if r.Principal == "" {
			bad(fmt.Sprintf("auth.client_certs[%d].principal", i), "must not be empty")
		}
		checkOrigins(bad, fmt.Sprintf("auth.client_certs[%d].origins", i), r.Origins)
	}
	if len(c.Auth.ClientCerts) > 0 && c.TLS.ClientCAFile == "" {
		bad("auth.client_certs", "needs tls.client_ca_file to verify certificates")
	}
	checkOrigins(bad, "cors.allowed_origins", c.CORS.AllowedOrigins)
	checkOrigins(bad, "cors.anonymous_origins", c.CORS.AnonymousOrigins)
	for i, o := range c.CORS.AnonymousOrigins {
		if !slices.Contains(c.CORS.AllowedOrigins, o) {
			bad(fmt.Sprintf("cors.anonymous_origins[%d]", i), "%q is not in cors.allowed_origins", o)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.TLS.ClientCAFile != "" && c.TLS.CertFile == "" {
		bad("tls.client_ca_file", "needs tls.cert_file and tls.key_file")
	}
	switch c.TLS.ClientAuth {
	case "optional", "require":
	default:
		bad("tls.client_auth", "want optional or require, got %q", c.TLS.ClientAuth)
	}
	if n := c.Limits.StreamsPerPrincipal; n != nil && *n < 0 {
		bad("limits.streams_per_principal", "must not be negative")
	}
	if n := c.Limits.StreamsPerIP; n != nil && *n < 0 {
		bad("limits.streams_per_ip", "must not be negative")
	}
	for i, cidr := range c.Limits.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			bad(fmt.Sprintf("limits.trusted_proxies[%d]", i), "want a CIDR such as 10.0.0.0/8, got %q", cidr)
		}
	}
	if r := c.Limits.PublishRate; r != nil && *r < 0 {
		bad("limits.publish_rate", "must not be negative")
	}
	if c.Limits.PublishBurst < 1 {
		bad("limits.publish_burst", "at least 1, got %d", c.Limits.PublishBurst)
	}
	if c.Limits.MaxHeaderBytes < 4096 || c.Limits.MaxHeaderBytes > 1<<20 {
		bad("limits.max_header_bytes", "want 4096 to 1048576, got %d", c.Limits.MaxHeaderBytes)
	}
}

// checkOrigins accepts serialized origins only: scheme://host[:port], no
// path, never "null" or "*".
func checkOrigins(bad func(field, format string, args ...any), field string, origins []string) {
	for i, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || o != strings.ToLower(o) {
			bad(fmt.Sprintf("%s[%d]", field, i), "want an origin such as https://app.example (lower case, no path), got %q", o)
		}
	}
}
