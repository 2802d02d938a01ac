package scan

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// Defaults and bounds of Config.
const (
	DefaultDuration     = 10 * time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultMaxLatency   = time.Second
	DefaultHeartbeatMax = 30 * time.Second
	DefaultHeadMax      = 2 * time.Second
	DefaultPublishEvery = 500 * time.Millisecond
	// MaxDuration bounds the streaming window, and a load run.
	MaxDuration = time.Hour
	// MaxConcurrency bounds the streams of a load run.
	MaxConcurrency = 20000
)

// ErrConfig is wrapped by the errors Run returns for an invalid Config, as
// opposed to errors of the network or the target.
var ErrConfig = errors.New("invalid scan configuration")

func configErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
}

// Config says what to scan and how. Only URL is required; every other
// field's zero value is a documented default.
type Config struct {
	// URL is the stream endpoint, http or https, with any query it needs
	// (such as ?topic=demo).
	URL string

	// Header holds extra request headers sent on every probe (tokens,
	// cookies), in order. The probes set Accept, Origin and Last-Event-ID
	// themselves, replacing a value given here for those.
	Header []rawhttp.Field

	// OtherCredentials, when set, are another principal's credential
	// headers (such as Authorization: Bearer …): a probe sent with them in
	// place of Header's credentials must not get the first principal's
	// stream from a cache (SSE-AUTH-LEAK).
	OtherCredentials []rawhttp.Field

	// Origin, when set, is the backend the intermediary in front of URL
	// forwards to (scheme and host; URL's path and query are kept): the
	// scanner asks it directly too, so that findings name their cause
	// (the intermediary or the origin).
	Origin string

	// Proto is the HTTP version to speak: HTTP/1.1 (default), HTTP/1.0,
	// or HTTP/2 (ALPN over TLS, prior knowledge over cleartext).
	Proto rawhttp.Proto
	// Insecure skips TLS certificate verification.
	Insecure bool
	// TLSConfig, when set, is the base TLS configuration (custom roots).
	TLSConfig *tls.Config
	// Timeout bounds connecting and waiting for each response head.
	// Zero means DefaultTimeout.
	Timeout time.Duration
	// Duration is the streaming window: how long the main stream (or, in
	// load mode, the run) is watched. Zero means DefaultDuration; at most
	// MaxDuration.
	Duration time.Duration

	// Profile is what to expect; nil means policy.Strict.
	Profile *policy.Profile

	// PageURL, when set, is the HTML page that opens the stream; its CSP
	// and headers are checked too.
	PageURL string

	// ExpectOrder, when set, lists header names whose relative order in
	// the stream response is pinned (HDR-ORDER).
	ExpectOrder []string

	// Baseline, when set, accepts findings and pins header values.
	Baseline *Baseline

	// Publish, when set, publishes timestamped events to a hub during the
	// window so that latency is measured exactly (see PublishConfig).
	Publish *PublishConfig

	// MaxLatency is the longest an event may take from publish (or its
	// "ts") to arrival before SSE-FLUSH fires. Zero means 1 s.
	MaxLatency time.Duration
	// HeartbeatMax is the longest silence SSE-HEARTBEAT allows. Zero
	// means 30 s.
	HeartbeatMax time.Duration
	// HeadMax is the longest a stream's response head may take before
	// SSE-HEAD-DELAY fires. Zero means 2 s. Stream heads are awaited for
	// the whole window (or Timeout, when longer) whatever it is.
	HeadMax time.Duration

	// Concurrency above 1 turns on load mode: that many streams, opened
	// over Ramp, watched for Duration. At most MaxConcurrency.
	Concurrency int
	// Ramp spreads the opening of load-mode streams; zero means a quarter
	// of Duration, at most 10 s.
	Ramp time.Duration
	// Progress, when set, receives a one-line progress display during the
	// scan (carriage returns, for a terminal): a load run's streams, or a
	// single stream's time, head, events and heartbeats.
	Progress io.Writer

	// Version names the scanner in the User-Agent and reports.
	Version string
}

// PublishConfig describes the hub endpoint the scanner publishes its own
// events to. Each event's data is JSON: {"sseguard_scan": nonce, "seq": n,
// "ts": unix milliseconds}. The stream must carry the topic published to.
type PublishConfig struct {
	// URL is the publish endpoint, such as http://127.0.0.1:8080/api/publish.
	URL string
	// Token is sent as Authorization: Bearer.
	Token string
	// Topic is the topic to publish to; empty means the first topic
	// parameter of the stream URL.
	Topic string
	// Every is the interval between publishes; zero means 500 ms.
	Every time.Duration
}

// withDefaults returns a copy of c with defaults filled in, or an error
// naming the field that is invalid.
func (c Config) withDefaults() (Config, *url.URL, error) {
	if !strings.Contains(c.URL, "://") {
		return c, nil, configErrorf("URL %q has no scheme: write http://%s or https://%s", c.URL, c.URL, c.URL)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return c, nil, configErrorf("URL: %v", err)
	}
	if s := strings.ToLower(u.Scheme); (s != "http" && s != "https") || u.Host == "" {
		return c, nil, configErrorf("URL %q: want an absolute http or https URL", c.URL)
	}
	if c.Origin != "" {
		if _, err := originURL(c.Origin, u); err != nil {
			return c, nil, err
		}
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.MaxLatency == 0 {
		c.MaxLatency = DefaultMaxLatency
	}
	if c.HeartbeatMax == 0 {
		c.HeartbeatMax = DefaultHeartbeatMax
	}
	if c.HeadMax == 0 {
		c.HeadMax = DefaultHeadMax
	}
	if c.Profile == nil {
		c.Profile = policy.Strict
	}
	switch {
	case c.Timeout < 0:
		return c, nil, configErrorf("Timeout: negative")
	case c.Duration < 0 || c.Duration > MaxDuration:
		return c, nil, configErrorf("Duration %s: want between 0 and %s", c.Duration, MaxDuration)
	case c.MaxLatency < 0, c.HeartbeatMax < 0, c.HeadMax < 0, c.Ramp < 0:
		return c, nil, configErrorf("durations must not be negative")
	case c.Concurrency < 0 || c.Concurrency > MaxConcurrency:
		return c, nil, configErrorf("Concurrency %d: want between 1 and %d", c.Concurrency, MaxConcurrency)
	}
	if c.Concurrency > 1 && c.Ramp == 0 {
		c.Ramp = min(c.Duration/4, 10*time.Second)
	}
	if c.Ramp >= c.Duration && c.Concurrency > 1 {
		return c, nil, configErrorf("Ramp %s: must be shorter than Duration %s", c.Ramp, c.Duration)
	}
	for _, f := range c.Header {
		if f.Name == "" || strings.ContainsAny(f.Name, " \t\r\n:") || strings.ContainsAny(f.Value, "\r\n\x00") {
			return c, nil, configErrorf("Header %q: not a valid header field", f.Name)
		}
	}
	if c.PageURL != "" {
		pu, err := u.Parse(c.PageURL)
		if err != nil {
			return c, nil, configErrorf("PageURL: %v", err)
		}
		c.PageURL = pu.String()
	}
	if c.Publish != nil {
		p, err := c.Publish.withDefaults(u)
		if err != nil {
			return c, nil, err
		}
		c.Publish = p
	}
	return c, u, nil
}

// withDefaults returns a copy of p with its URL resolved against the
// stream's u and defaults filled in, or an error naming the invalid field.
func (p PublishConfig) withDefaults(u *url.URL) (*PublishConfig, error) {
	pu, err := u.Parse(p.URL)
	if err != nil || p.URL == "" {
		return nil, configErrorf("Publish.URL %q: want the hub's publish URL", p.URL)
	}
	p.URL = pu.String()
	if p.Topic == "" {
		p.Topic = u.Query().Get("topic")
	}
	if p.Topic == "" {
		return nil, configErrorf("Publish.Topic: the stream URL has no topic parameter; name the topic")
	}
	if p.Every == 0 {
		p.Every = DefaultPublishEvery
	}
	if p.Every < 10*time.Millisecond {
		return nil, configErrorf("Publish.Every %s: at least 10ms", p.Every)
	}
	return &p, nil
}

// client returns the raw HTTP client for c.
func (c *Config) client() *rawhttp.Client {
	return &rawhttp.Client{Proto: c.Proto, Timeout: c.Timeout, TLSConfig: c.TLSConfig, Insecure: c.Insecure}
}

// requestHeader returns the probe's request header: what a browser's
// EventSource sends, then the configured extras, with the probe's own
// fields replacing any of the same name.
func (c *Config) requestHeader(own ...rawhttp.Field) []rawhttp.Field {
	version := c.Version
	if version == "" {
		version = "devel"
	}
	base := []rawhttp.Field{
		{Name: "User-Agent", Value: "sseguard-scan/" + version},
		{Name: "Accept", Value: "text/event-stream"},
		{Name: "Cache-Control", Value: "no-cache"},
		// What browsers offer: an intermediary that compresses the
		// stream for them must be seen doing it.
		{Name: "Accept-Encoding", Value: "gzip, deflate, br"},
	}
	has := func(list []rawhttp.Field, name string) bool {
		for _, f := range list {
			if strings.EqualFold(f.Name, name) {
				return true
			}
		}
		return false
	}
	var out []rawhttp.Field
	for _, f := range base {
		if !has(own, f.Name) && !has(c.Header, f.Name) {
			out = append(out, f)
		}
	}
	for _, f := range c.Header {
		if !has(own, f.Name) {
			out = append(out, f)
		}
	}
	for _, f := range own {
		if f.Value != "" {
			out = append(out, f)
		}
	}
	return out
}
