// Package config is sseguard's configuration: the file format of
// sseguard serve, with flags and environment variables that override it,
// and the parts every sseguard file format shares. Each is validated at
// start with errors that name the field.
//
// Every field has a safe default, so an empty file (or none) is a working
// configuration: docs/configuration.md lists each key with its default, and
// testdata/full.yaml holds them all.
//
// The proxy's file (package proxy) reuses the sections Policy, Tokens,
// CORS, TLS, RequestLimits and Log, each with one Fill and one Validate,
// and reads its file with Decode; every error is a *FieldError, and Locate
// gives it the line of the file it is about.
//
// Package config reads and checks settings; it does not act on them.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/store"
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
	// Policy holds profile and accept, the header policy.
	Policy `yaml:",inline"`
	// ShutdownTimeout bounds a graceful stop. Default 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	Store     Store     `yaml:"store"`
	Stream    Stream    `yaml:"stream"`
	Poll      Poll      `yaml:"poll"`
	WS        WS        `yaml:"ws"`
	Publish   Publish   `yaml:"publish"`
	Auth      Auth      `yaml:"auth"`
	CORS      CORS      `yaml:"cors"`
	TLS       TLS       `yaml:"tls"`
	Limits    Limits    `yaml:"limits"`
	Telemetry Telemetry `yaml:"telemetry"`
	Dashboard Dashboard `yaml:"dashboard"`
	Presence  Presence  `yaml:"presence"`
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
	// Driver is bolt (default, durable, in Data), memory (lost on exit)
	// or redis (shared by several hub processes; see Redis).
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
	// Redis configures driver redis.
	Redis StoreRedis `yaml:"redis"`
}

// Retention returns the section's limits as the stores take them. Call
// it on a filled Config: a nil max_events_per_topic or max_age keeps all.
func (s Store) Retention() store.Retention {
	r := store.Retention{IdempotencyWindow: s.IdempotencyWindow.D()}
	if s.MaxEventsPerTopic != nil {
		r.MaxEventsPerTopic = *s.MaxEventsPerTopic
	}
	if s.MaxAge != nil {
		r.MaxAge = s.MaxAge.D()
	}
	return r
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

// WS configures GET /ws, the WebSocket transport. Its stream settings
// (heartbeat, write_timeout, queue_bytes, max_topics) are the stream
// section's: one subscription, two framings.
type WS struct {
	// MaxMessageBytes bounds one message a client sends (it is closed
	// with 1009 beyond). Default 1024.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// MessageRate is the messages per second one connection may send
	// (token bucket); more closes it with 1008. Default 1.
	MessageRate float64 `yaml:"message_rate"`
	// MessageBurst is how many messages may come at once before the rate
	// applies. Default 5.
	MessageBurst int `yaml:"message_burst"`
	// Compression offers permessage-deflate. Default false: compressing
	// attacker-chosen data with secrets in one context leaks the secrets
	// (CRIME, BREACH).
	Compression bool `yaml:"compression"`
}

// Publish configures POST /api/publish.
type Publish struct {
	// MaxBodyBytes bounds a publish request body (413 beyond). Default 1048576.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDataBytes bounds one event's data (413 beyond). Default 65536.
	MaxDataBytes int `yaml:"max_data_bytes"`
}

// Auth configures tokens and client certificates.
type Auth struct {
	// SecretFile holds the HS256 secret; serve creates it (32 random
	// bytes, mode 0600) when missing, token never does. Default
	// <data>/secret.key.
	SecretFile string `yaml:"secret_file"`
	// Tokens holds the keys shared with the proxy's auth section: cookie,
	// query_param, keys, jwks_url, jwks_refresh, audience, issuer, leeway.
	Tokens `yaml:",inline"`
	// AnonymousSubscribe are topic patterns anyone may read without a token.
	// Default [demo]; set [] in production.
	AnonymousSubscribe *[]string `yaml:"anonymous_subscribe"`
	// JTIOnce refuses a publish whose token's jti was already used, for
	// publisher tokens that must be single-use. Default false.
	JTIOnce bool `yaml:"jti_once"`
	// ClientCerts maps verified client certificates (tls.client_ca_file)
	// to permissions. Default none.
	ClientCerts []CertRule `yaml:"client_certs"`
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
	// RequestLimits holds max_header_bytes, read_header_timeout and
	// read_body_timeout, shared with the proxy.
	RequestLimits `yaml:",inline"`
}

// Default returns the configuration with every default filled in: a
// zero Config after Fill.
func Default() *Config {
	c := &Config{}
	c.Fill()
	return c
}

// Fill sets each field left at its zero value (a nil pointer included) to
// its default, as Parse does for the keys a file omits, and leaves the
// others alone; it does not validate. A Config built in code, such as the
// zero Config, is complete after Fill. (It shadows Policy.Fill, which
// fills the policy keys only.)
func (c *Config) Fill() {
	setStr(&c.Listen, "127.0.0.1:8080")
	setStr(&c.Data, "./sseguard-data")
	c.Policy.Fill()
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
	c.Store.Redis.Fill()
	setDur(&c.Stream.Heartbeat, 15*time.Second)
	setDur(&c.Stream.Retry, 3*time.Second)
	setDur(&c.Stream.WriteTimeout, 10*time.Second)
	setInt(&c.Stream.QueueBytes, 1<<20)
	setInt(&c.Stream.MaxTopics, 32)
	setInt(&c.Stream.ReplayBytes, 64<<20)
	setDur(&c.Poll.MaxWait, 30*time.Second)
	setInt(&c.Poll.MaxEvents, 100)
	setDur(&c.Poll.Retry, time.Second)
	setInt(&c.WS.MaxMessageBytes, 1024)
	if c.WS.MessageRate == 0 {
		c.WS.MessageRate = 1
	}
	setInt(&c.WS.MessageBurst, 5)
	if c.Publish.MaxBodyBytes == 0 {
		c.Publish.MaxBodyBytes = 1 << 20
	}
	setInt(&c.Publish.MaxDataBytes, 64<<10)
	c.Auth.Tokens.Fill()
	if c.Auth.AnonymousSubscribe == nil {
		c.Auth.AnonymousSubscribe = &[]string{"demo"}
	}
	nilIfEmpty(&c.Auth.ClientCerts)
	c.CORS.Fill()
	c.TLS.Fill()
	if c.Limits.StreamsPerPrincipal == nil {
		n := 1000
		c.Limits.StreamsPerPrincipal = &n
	}
	if c.Limits.StreamsPerIP == nil {
		n := 5000
		c.Limits.StreamsPerIP = &n
	}
	nilIfEmpty(&c.Limits.TrustedProxies)
	if c.Limits.PublishRate == nil {
		r := 1000.0
		c.Limits.PublishRate = &r
	}
	setInt(&c.Limits.PublishBurst, 2000)
	c.Limits.RequestLimits.Fill()
	if c.Telemetry.SpikeFactor == 0 {
		c.Telemetry.SpikeFactor = 3
	}
	if c.Telemetry.SpikeFloor == 0 {
		c.Telemetry.SpikeFloor = 30
	}
	setDur(&c.Telemetry.SpikeHalfLife, 10*time.Minute)
	setDur(&c.Telemetry.SpikeLearn, time.Minute)
	c.Presence.Fill()
	c.Log.Fill()
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
// fills in defaults. It does not validate; call Validate. Its errors are
// Decode's.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	if err := Decode(data, c); err != nil {
		return nil, err
	}
	c.Fill()
	return c, nil
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

// Validate checks every field and returns all problems found, joined; each
// is a *FieldError.
func (c *Config) Validate() error {
	pr := &problems{}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		pr.add("listen", "want host:port, got %q", c.Listen)
	}
	errs := []error{pr.err(), c.Policy.Validate("")}
	pr = &problems{}
	positive := map[string]Duration{
		"shutdown_timeout":         c.ShutdownTimeout,
		"store.idempotency_window": c.Store.IdempotencyWindow,
		"stream.heartbeat":         c.Stream.Heartbeat,
		"stream.retry":             c.Stream.Retry,
		"stream.write_timeout":     c.Stream.WriteTimeout,
		"poll.max_wait":            c.Poll.MaxWait,
		"poll.retry":               c.Poll.Retry,
	}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		notNegative(pr, name, positive[name])
	}
	if c.Poll.MaxWait.D() > 5*time.Minute {
		pr.add("poll.max_wait", "at most 5m, got %s", c.Poll.MaxWait.D())
	}
	switch c.Store.Driver {
	case "bolt", "memory", "redis":
	default:
		pr.add("store.driver", "want bolt, memory or redis, got %q", c.Store.Driver)
	}
	// A Redis cursor holds a position per topic and must fit an SSE id
	// line (store.MaxCursor).
	if c.Store.Driver == "redis" && c.Stream.MaxTopics > 32 && c.Stream.MaxTopics <= 1024 {
		pr.add("stream.max_topics", "at most 32 with store.driver redis, got %d", c.Stream.MaxTopics)
	}
	// The pointers are nil only in a Config built by hand, without Parse
	// or Default.
	if n := c.Store.MaxEventsPerTopic; n != nil && *n < 0 {
		pr.add("store.max_events_per_topic", "must not be negative")
	}
	if d := c.Store.MaxAge; d != nil && *d < 0 {
		pr.add("store.max_age", "must not be negative")
	}
	if c.Stream.QueueBytes < 4096 {
		pr.add("stream.queue_bytes", "at least 4096, got %d", c.Stream.QueueBytes)
	}
	if c.Stream.ReplayBytes < c.Stream.QueueBytes {
		pr.add("stream.replay_bytes", "at least stream.queue_bytes (%d), got %d", c.Stream.QueueBytes, c.Stream.ReplayBytes)
	}
	if c.Stream.MaxTopics < 1 || c.Stream.MaxTopics > 1024 {
		pr.add("stream.max_topics", "want 1 to 1024, got %d", c.Stream.MaxTopics)
	}
	if c.Poll.MaxEvents < 1 || c.Poll.MaxEvents > 10000 {
		pr.add("poll.max_events", "want 1 to 10000, got %d", c.Poll.MaxEvents)
	}
	if c.WS.MaxMessageBytes < 64 || c.WS.MaxMessageBytes > 1<<20 {
		pr.add("ws.max_message_bytes", "want 64 to 1048576, got %d", c.WS.MaxMessageBytes)
	}
	if c.WS.MessageRate <= 0 {
		pr.add("ws.message_rate", "must be more than 0, got %g", c.WS.MessageRate)
	}
	if c.WS.MessageBurst < 1 {
		pr.add("ws.message_burst", "at least 1, got %d", c.WS.MessageBurst)
	}
	if c.Publish.MaxBodyBytes < 1024 {
		pr.add("publish.max_body_bytes", "at least 1024, got %d", c.Publish.MaxBodyBytes)
	}
	if c.Publish.MaxDataBytes < 1 || int64(c.Publish.MaxDataBytes) > c.Publish.MaxBodyBytes {
		pr.add("publish.max_data_bytes", "want 1 to publish.max_body_bytes (%d), got %d", c.Publish.MaxBodyBytes, c.Publish.MaxDataBytes)
	}
	errs = append(errs, pr.err(), c.Store.Redis.Validate("store.redis", c.Store.Driver == "redis"), c.validateAuth(), c.CORS.Validate("cors"), c.TLS.Validate("tls"), c.validateLimits())
	pr = &problems{}
	if c.Telemetry.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.Telemetry.MetricsListen); err != nil {
			pr.add("telemetry.metrics_listen", "want host:port, got %q", c.Telemetry.MetricsListen)
		}
	}
	if c.Telemetry.SpikeFactor < 1 {
		pr.add("telemetry.spike_factor", "at least 1, got %g", c.Telemetry.SpikeFactor)
	}
	if c.Telemetry.SpikeFloor < 0 {
		pr.add("telemetry.spike_floor", "must not be negative")
	}
	if c.Telemetry.SpikeLearn < 0 || c.Telemetry.SpikeLearn.D() > time.Minute {
		pr.add("telemetry.spike_learn", "want 0s to 1m, got %s", c.Telemetry.SpikeLearn.D())
	}
	notNegative(pr, "telemetry.spike_half_life", c.Telemetry.SpikeHalfLife)
	errs = append(errs, pr.err(), c.Presence.Validate("presence"), c.Log.Validate("log"))
	return Flatten(errs)
}

// Flatten joins the errors of each section's Validate into one flat list,
// so that the result prints one *FieldError a line and unwraps to all of
// them. Nil errors are dropped. Formats built from the shared sections
// (the proxy's) join their sections' errors with it too.
func Flatten(errs []error) error {
	var flat []error
	for _, err := range errs {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else if err != nil {
			flat = append(flat, err)
		}
	}
	return errors.Join(flat...)
}

// validateAuth checks the auth section: the shared token keys, then
// serve's own.
func (c *Config) validateAuth() error {
	pr := &problems{prefix: "auth"}
	var anonymous []string
	if c.Auth.AnonymousSubscribe != nil {
		anonymous = *c.Auth.AnonymousSubscribe
	}
	for i, p := range anonymous {
		if p == "" || (strings.Contains(p, "*") && !strings.HasSuffix(p, "*")) || strings.Count(p, "*") > 1 {
			pr.add(fmt.Sprintf("anonymous_subscribe[%d]", i), "want a topic or a prefix ending in *, got %q", p)
		}
	}
	for i, r := range c.Auth.ClientCerts {
		if r.Principal == "" {
			pr.add(fmt.Sprintf("client_certs[%d].principal", i), "must not be empty")
		}
		checkOrigins(pr, fmt.Sprintf("client_certs[%d].origins", i), r.Origins)
	}
	if len(c.Auth.ClientCerts) > 0 && c.TLS.ClientCAFile == "" {
		pr.add("client_certs", "needs tls.client_ca_file to verify certificates")
	}
	return Flatten([]error{c.Auth.Tokens.Validate("auth"), pr.err()})
}

// validateLimits checks the limits section: serve's own keys, then the
// shared request limits.
func (c *Config) validateLimits() error {
	pr := &problems{prefix: "limits"}
	if n := c.Limits.StreamsPerPrincipal; n != nil && *n < 0 {
		pr.add("streams_per_principal", "must not be negative")
	}
	if n := c.Limits.StreamsPerIP; n != nil && *n < 0 {
		pr.add("streams_per_ip", "must not be negative")
	}
	for i, cidr := range c.Limits.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			pr.add(fmt.Sprintf("trusted_proxies[%d]", i), "want a CIDR such as 10.0.0.0/8, got %q", cidr)
		}
	}
	if r := c.Limits.PublishRate; r != nil && *r < 0 {
		pr.add("publish_rate", "must not be negative")
	}
	if c.Limits.PublishBurst < 1 {
		pr.add("publish_burst", "at least 1, got %d", c.Limits.PublishBurst)
	}
	return Flatten([]error{pr.err(), c.Limits.RequestLimits.Validate("limits")})
}
