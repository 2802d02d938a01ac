package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config describes one load run. Its zero value, with URL set, is a small
// connect-and-fan-out run: 100 streams on topic "bench", 20 events at 5/s.
type Config struct {
	// URL is the hub's base URL, such as http://127.0.0.1:8080. Its host
	// must be loopback (127.0.0.0/8 or ::1), or a name that resolves only to
	// loopback addresses; anything else is refused with ErrNotLoopback.
	// http, or https for streams over TLS (see CAFile, Insecure and
	// H2Conns).
	URL string

	// CAFile, for an https URL, holds the CAs (PEM) that issued the hub's
	// certificate. Insecure instead skips verifying it: the target is
	// loopback, so this only forgoes checking a local test hub's
	// certificate. An https URL needs one of them.
	CAFile   string
	Insecure bool

	// H2Conns, when positive (https only), multiplexes the streams over
	// this many HTTP/2 connections, stream i on connection i mod H2Conns,
	// as a browser with many tabs open does. Zero opens one HTTP/1.1
	// connection per stream.
	H2Conns int

	// Streams is the number of subscribers. Zero means 100; negative means
	// none (a publish-only run that measures throughput).
	Streams int

	// Topic is the topic every stream subscribes to and every event is
	// published on. Empty means "bench".
	Topic string

	// StreamURLs and PublishURLs, when set, are base URLs of the nodes
	// of a cluster (loopback too): streams connect to them round robin,
	// and publishers (worker i to node i mod n), instead of URL. Streams
	// on one node and publishes on another measure delivery across
	// nodes; both lists over the same nodes spread the load.
	StreamURLs, PublishURLs []string

	// Token, when set, is sent as "Authorization: Bearer TOKEN" on streams
	// and publishes.
	Token string

	// EventsPath and PublishPath are the hub's routes. Empty means
	// "/events" and "/api/publish". The stream query is "topic=Topic".
	EventsPath, PublishPath string

	// Events is the number of publishes. Zero means 20; negative means none
	// (a connect, hold and memory run).
	Events int

	// Rate is publishes per second. Zero publishes as fast as Publishers
	// allow: the throughput mode.
	Rate float64

	// Publishers is the number of concurrent publish requests, each on its
	// own keep-alive connection. Zero means 1 when Rate is set and 64 when
	// Rate is zero.
	Publishers int

	// EventType, when set, is the "type" of every published event.
	EventType string

	// PadBytes adds that many bytes to each event's data, to measure larger
	// payloads. Zero adds none.
	PadBytes int

	// DataBytes, when positive, makes each event's data exactly this many
	// bytes (the padding is sized per event) and takes precedence over
	// PadBytes. It must be at least MinDataBytes.
	DataBytes int

	// Replay, when it asks for any client, makes this a replay run: the
	// Events are published first, as history, and then clients reconnect
	// with an old cursor; see [Replay]. A replay run opens no live
	// streams: Streams must be zero or negative.
	Replay Replay

	// Ramp spreads the stream connects evenly over this duration. Zero,
	// with ConnectRate zero, connects as fast as ConnectConcurrency allows.
	Ramp time.Duration

	// ConnectRate, when positive, paces stream connects to this many per
	// second, and takes precedence over Ramp.
	ConnectRate float64

	// ConnectConcurrency bounds the connects in flight. Zero means 64.
	ConnectConcurrency int

	// ConnectTimeout bounds one stream's dial, request and response head.
	// Zero means 10 s.
	ConnectTimeout time.Duration

	// Sources are the local loopback addresses streams are dialed from,
	// round robin, so that a run can pass one address's ephemeral port
	// range. Each must be loopback and of the target's address family. Nil
	// lets the system choose.
	Sources []netip.Addr

	// Settle is the idle time after all streams are connected before the
	// server's memory is sampled. Zero means 2 s; negative means none.
	Settle time.Duration

	// Hold keeps the streams open and idle after Settle, counting heartbeat
	// comments and unexpected disconnects, before publishing. Zero means no
	// hold.
	Hold time.Duration

	// Drain is how long to wait, after the last publish is answered, for
	// every stream to receive every accepted event. Zero means 5 s.
	Drain time.Duration

	// PublishTimeout bounds one publish request. Zero means 10 s.
	PublishTimeout time.Duration

	// Duration caps the whole run; when it is reached, Run stops, closes
	// everything and returns the partial report with an error. Zero means
	// 5 min.
	Duration time.Duration

	// PID, when positive, is the server's process: its memory (VmRSS) and
	// CPU time are read from /proc. It takes precedence over MetricsURL.
	PID int

	// MetricsURL, when set, is the server's Prometheus endpoint (loopback
	// only): its process_resident_memory_bytes and
	// process_cpu_seconds_total are read instead of /proc.
	MetricsURL string

	// CompareIDs orders two event IDs for the out-of-order count. Nil
	// compares decimal IDs numerically and any other IDs as strings.
	CompareIDs func(a, b string) int
}

// Limits of a run: the generator must stay bounded whatever it is asked.
const (
	// MaxStreams is the most streams one run opens.
	MaxStreams = 1_000_000
	// MaxEvents is the most publishes one run makes.
	MaxEvents = 10_000_000
	// maxTrackingBytes bounds the per-stream bitmaps of received events.
	maxTrackingBytes = 512 << 20
	// maxPad bounds PadBytes and DataBytes.
	maxPad = 1 << 20
	// MinDataBytes is the smallest DataBytes: the sequence number and send
	// time every event carries, with room for padding.
	MinDataBytes = 64
	// MaxStalled is the most stalled replays and polls one run opens.
	MaxStalled = 10_000
	// MaxReaders is the most replay readers one run opens.
	MaxReaders = 1_000
)

// ErrNotLoopback is returned when the target, a source or the metrics URL
// is not a loopback address: the load generator only ever sends traffic to
// this machine.
var ErrNotLoopback = errors.New("not a loopback address")

// ErrConfig is matched, with errors.Is, by every error Run returns for a
// Config it refuses before sending anything; the message names the field.
var ErrConfig = errors.New("bench: invalid config")

// configError is a refused Config: it matches ErrConfig and what it wraps.
type configError struct{ err error }

func (e *configError) Error() string   { return "config: " + e.err.Error() }
func (e *configError) Unwrap() []error { return []error{e.err, ErrConfig} }

func configErrorf(format string, args ...any) error {
	return &configError{err: fmt.Errorf(format, args...)}
}

// settings is a Config with defaults applied and the target resolved.
type settings struct {
	Config
	target  netip.AddrPort // the resolved loopback address to dial
	streams int
	events  int
	replay  bool // Replay asks for clients
}

func (c Config) withDefaults() (settings, error) {
	s := settings{Config: c}
	if c.URL == "" {
		return s, configErrorf("URL is empty")
	}
	s.replay = c.Replay.Stalled > 0 || c.Replay.Polls > 0 || c.Replay.Readers > 0 || c.Replay.Storm > 0
	switch {
	case c.Streams > 0 && s.replay:
		return s, configErrorf("Streams %d: a replay run opens no live streams (Replay.Readers read the history)", c.Streams)
	case c.Streams == 0 && !s.replay:
		s.streams = 100
	case c.Streams > 0:
		s.streams = c.Streams
	}
	switch {
	case c.Events == 0:
		s.events = 20
	case c.Events > 0:
		s.events = c.Events
	}
	if s.streams > MaxStreams {
		return s, configErrorf("Streams %d is over the limit %d", s.streams, MaxStreams)
	}
	if s.events > MaxEvents {
		return s, configErrorf("Events %d is over the limit %d", s.events, MaxEvents)
	}
	if s.streams == 0 && s.events == 0 {
		return s, configErrorf("nothing to do: Streams and Events are both none")
	}
	if b := int64(s.streams) * int64(s.events/8+8); b > maxTrackingBytes {
		return s, configErrorf("Streams × Events (%d × %d) needs %d MB to track deliveries, over the %d MB bound; use fewer of either", s.streams, s.events, b>>20, maxTrackingBytes>>20)
	}
	if c.Rate < 0 {
		return s, configErrorf("Rate %v is negative", c.Rate)
	}
	if c.ConnectRate < 0 {
		return s, configErrorf("ConnectRate %v is negative", c.ConnectRate)
	}
	if c.Publishers < 0 || c.ConnectConcurrency < 0 || c.PadBytes < 0 || c.Ramp < 0 || c.Hold < 0 || c.Drain < 0 || c.Duration < 0 || c.ConnectTimeout < 0 || c.PublishTimeout < 0 {
		return s, configErrorf("Publishers, ConnectConcurrency, PadBytes, Ramp, Hold, Drain, Duration, ConnectTimeout and PublishTimeout must not be negative")
	}
	if c.PadBytes > maxPad {
		return s, configErrorf("PadBytes %d is over the limit %d", c.PadBytes, maxPad)
	}
	if s.Topic == "" {
		s.Topic = "bench"
	}
	if s.EventsPath == "" {
		s.EventsPath = "/events"
	}
	if s.PublishPath == "" {
		s.PublishPath = "/api/publish"
	}
	if c.DataBytes != 0 && (c.DataBytes < MinDataBytes || c.DataBytes > maxPad) {
		return s, configErrorf("DataBytes %d: want %d to %d", c.DataBytes, MinDataBytes, maxPad)
	}
	if err := s.Replay.withDefaults(s.events); err != nil {
		return s, err
	}
	for _, field := range []struct{ name, v string }{{"EventsPath", s.EventsPath}, {"PublishPath", s.PublishPath}, {"Replay.PollPath", s.Replay.PollPath}} {
		if !strings.HasPrefix(field.v, "/") || strings.ContainsAny(field.v, "?# \r\n") {
			return s, configErrorf("%s %q must be an absolute path without query", field.name, field.v)
		}
	}
	if strings.ContainsAny(s.Token, "\r\n") {
		return s, configErrorf("Token holds a line break")
	}
	if s.Publishers == 0 {
		s.Publishers = 1
		if s.Rate == 0 {
			s.Publishers = 64
		}
	}
	if s.ConnectConcurrency == 0 {
		s.ConnectConcurrency = 64
	}
	if s.ConnectTimeout == 0 {
		s.ConnectTimeout = 10 * time.Second
	}
	if s.Settle == 0 {
		s.Settle = 2 * time.Second
	}
	if s.Drain == 0 {
		s.Drain = 5 * time.Second
	}
	if s.PublishTimeout == 0 {
		s.PublishTimeout = 10 * time.Second
	}
	if s.Duration == 0 {
		s.Duration = 5 * time.Minute
	}
	if s.CompareIDs == nil {
		s.CompareIDs = compareIDs
	}
	return s, nil
}

// parseTarget checks the URL's form; resolving its host is done by
// resolveLoopback.
func parseTarget(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, configErrorf("URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, configErrorf("URL %q: only http:// and https:// are supported", raw)
	}
	if u.Hostname() == "" {
		return nil, configErrorf("URL %q has no host", raw)
	}
	if u.User != nil {
		return nil, configErrorf("URL %q: use Token, not credentials in the URL", raw)
	}
	return u, nil
}

// maxSources bounds the source addresses of one run: enough for one
// address per stream at the scales a 2-core machine holds.
const maxSources = 65536

// ParseSources parses a list of loopback source addresses: comma-separated
// addresses ("127.0.0.1,127.0.0.2"), IPv4 ranges ("127.0.0.1-127.0.0.8",
// "127.0.0.1-8" for the last byte, or across /24s as
// "127.1.0.1-127.1.23.112"), or both mixed, at most 65536 in all. Every
// address must be loopback. An empty string returns nil.
func ParseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := netip.ParseAddr(lo)
		if err != nil {
			return nil, fmt.Errorf("sources: %q: %w", part, err)
		}
		if !first.IsLoopback() {
			return nil, fmt.Errorf("sources: %s is %w", first, ErrNotLoopback)
		}
		if !isRange {
			out = append(out, first)
			continue
		}
		if !first.Is4() {
			return nil, fmt.Errorf("sources: %q: ranges are for IPv4 only", part)
		}
		last, err := netip.ParseAddr(hi)
		if err != nil {
			n, nerr := strconv.Atoi(hi)
			if nerr != nil || n < 0 || n > 255 {
				return nil, fmt.Errorf("sources: %q: end %q is neither an address nor a last byte", part, hi)
			}
			b := first.As4()
			b[3] = byte(n)
			last = netip.AddrFrom4(b)
		}
		f, l := first.As4(), last.As4()
		lo32 := uint32(f[0])<<24 | uint32(f[1])<<16 | uint32(f[2])<<8 | uint32(f[3])
		hi32 := uint32(l[0])<<24 | uint32(l[1])<<16 | uint32(l[2])<<8 | uint32(l[3])
		if !last.Is4() || !last.IsLoopback() || hi32 < lo32 {
			return nil, fmt.Errorf("sources: %q: a range runs up, within 127.0.0.0/8", part)
		}
		if hi32-lo32 >= maxSources {
			return nil, fmt.Errorf("sources: %q: more than %d addresses", part, maxSources)
		}
		for a := lo32; a <= hi32; a++ {
			out = append(out, netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}))
		}
	}
	if len(out) > maxSources {
		return nil, fmt.Errorf("sources: %d addresses, more than %d", len(out), maxSources)
	}
	return out, nil
}

// compareIDs orders IDs of one topic in natural order: runs of digits
// compare as numbers (leading zeros ignored), other bytes as bytes. That
// orders decimal IDs (bolt, memory) and the IDs of store/redis
// (hash.epoch.offset: one topic's IDs of one epoch differ in the offset)
// and memory.Shared (topic.offset), whose offsets plain string order gets
// wrong from 9 to 10. A stream of the run subscribes one topic, so the
// check per stream is per topic; IDs of several topics (vector cursors)
// have no such order.
func compareIDs(a, b string) int { return naturalCompare(a, b) }

// naturalCompare is compareIDs for strings and byte slices, without
// allocating.
func naturalCompare[T ~string | ~[]byte](a, b T) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if isDigit(a[i]) && isDigit(b[j]) {
			ei, ej := i, j
			for ei < len(a) && isDigit(a[ei]) {
				ei++
			}
			for ej < len(b) && isDigit(b[ej]) {
				ej++
			}
			ra, rb := a[i:ei], b[j:ej]
			for len(ra) > 1 && ra[0] == '0' {
				ra = ra[1:]
			}
			for len(rb) > 1 && rb[0] == '0' {
				rb = rb[1:]
			}
			if len(ra) != len(rb) {
				if len(ra) < len(rb) {
					return -1
				}
				return 1
			}
			for k := range len(ra) {
				if ra[k] != rb[k] {
					if ra[k] < rb[k] {
						return -1
					}
					return 1
				}
			}
			i, j = ei, ej
			continue
		}
		if a[i] != b[j] {
			if a[i] < b[j] {
				return -1
			}
			return 1
		}
		i++
		j++
	}
	switch {
	case len(a)-i < len(b)-j:
		return -1
	case len(a)-i > len(b)-j:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
