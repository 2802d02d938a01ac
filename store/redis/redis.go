// Package redis is a store.Store on Redis Streams that several hub
// processes share: any process appends, any process reads and resumes a
// cursor issued by another, and store.Feed brings every process the events
// all of them commit. It talks to a single Redis, a Sentinel-managed one or
// a Redis Cluster through go-redis's UniversalClient.
//
// # Keys
//
// Each topic has its own keys, which share the hash tag {<topic>} (with
// %, { and } escaped) and so one Cluster slot, while different topics
// spread over the shards; no key is written by every publish.
//
//	<prefix>:{t}:m        hash: e (epoch), n (last offset), u (last µs),
//	                      kf, ko (Trim forgot the keys from before kf, of
//	                      events up to offset ko)
//	<prefix>:{t}:s        stream, entry IDs <offset>-<µs>, fields d and t
//	<prefix>:{t}:k:<key>  an idempotency key: epoch, offset, µs, fingerprint
//	<prefix>:topics       set of every topic, for Trim and Follow
//	<prefix>:feed         the pub/sub channel Follow listens on
//
// A topic under one of Config.PatternPrefixes takes its prefix's hash tag
// instead, beside the prefix's index stream, which topic patterns are
// read from (see index.go).
//
// One Lua script call appends a batch's records, of all its topics (one
// call per hash slot on a Cluster; a topic under a pattern prefix has its
// own, see indexappend.go): per topic its epoch, each record's idempotency
// check, XADD with the next offset, idempotency key with its expiry, and a
// PUBLISH of the new events, in one atomic step; Append sends the calls in
// one pipeline (one round trip per shard). Offsets are contiguous per topic, so a reader finds a gap
// (retention, Page.Truncated) by arithmetic, and an epoch tells a topic
// that Redis lost and started again from one it kept (see store's package
// doc on IDs and cursors, and cursor.go here).
//
// # What an acknowledged Append means
//
// Append returns once Redis has executed the batch's scripts: durable as
// far as the server's persistence settings make it (docs/cluster.md says
// what appendfsync always, everysec and RDB mean for it), and, with
// Config.MinReplicas, once that many replicas acknowledged it (WAIT).
// Unlike bolt, a batch is not one transaction: each topic's records are
// stored atomically together, and on an error any topic's records may have
// been stored (a timeout after Redis ran the scripts, a WAIT that came
// short). On a Cluster a shard that fails fails only its topics' records
// (store.Appended.Err) while the other shards' are stored and answered.
// The caller answers each failed publisher with an error, and an
// Idempotency-Key makes the retry return the stored event instead of
// storing it twice. Idempotency keys are
// scoped to their topic: a key reused on another topic stores a new event.
//
// Package redis does not run Redis or decide its persistence; it does not
// fan out to subscribers (package hub does).
package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// DefaultPrefix is the key prefix when Config.Prefix is empty.
const DefaultPrefix = "sseguard"

// DefaultReadLimit is the page size of a Read whose limit is zero or less.
const DefaultReadLimit = 1000

// DefaultReplicaTimeout bounds the WAIT for Config.MinReplicas when
// Config.ReplicaTimeout is zero.
const DefaultReplicaTimeout = time.Second

// Errors of this store, besides store's; test them with errors.Is.
var (
	// ErrUnavailable wraps every error that comes from reaching Redis
	// (refused, timed out, a Cluster shard down, a server loading its
	// data): retrying later may succeed. The hub answers 503
	// store_unavailable with Retry-After. It wraps store.ErrUnavailable.
	ErrUnavailable = fmt.Errorf("redis store: %w", store.ErrUnavailable)
	// ErrNotReplicated means fewer replicas than Config.MinReplicas
	// acknowledged an Append in time. The events are stored on the
	// master and may be kept or lost in a failover; it also wraps
	// ErrUnavailable.
	ErrNotReplicated = errors.New("redis store: not acknowledged by enough replicas")
)

// Config is what Open needs. Client is required; every other field has a
// safe zero value.
type Config struct {
	// Client reaches Redis: a *goredis.Client, *goredis.ClusterClient or
	// failover client. The store owns it from Open on and closes it in
	// Close. Its timeouts bound every call, so that a Redis that does not
	// answer gives an error, not a hang: set ReadTimeout and WriteTimeout
	// (config does) and MaxRetries -1, since a retried script could store
	// a record twice.
	Client goredis.UniversalClient
	// Retention is applied by Append (count, approximately) and Trim.
	Retention store.Retention
	// Prefix starts every key and the channel; several hubs share events
	// when they share Redis and the prefix. Default DefaultPrefix. It must
	// not contain { or }.
	Prefix string
	// MinReplicas, when above zero, makes Append WAIT until that many
	// replicas acknowledged its writes, and fail with ErrNotReplicated
	// when fewer did within ReplicaTimeout.
	MinReplicas int
	// ReplicaTimeout bounds that WAIT. Default DefaultReplicaTimeout.
	ReplicaTimeout time.Duration
	// PatternPrefixes are the topic prefixes whose topics can be read by
	// pattern (see index.go): at most MaxPatternPrefixes, none starting
	// with store.ReservedPrefix or containing '*'. "" indexes every
	// topic. Every hub process sharing the prefix must declare the same.
	PatternPrefixes []string
}

// Store is a store.Store and store.Feed on Redis. Call Open.
type Store struct {
	c       goredis.UniversalClient
	cluster *goredis.ClusterClient // nil unless Client is one
	r       store.Retention
	window  time.Duration
	prefix  string
	minRepl int
	replTO  time.Duration

	// mu is held for reading by every call that uses the client, and for
	// writing by Close, so that Close waits for them and they see
	// ErrClosed after it rather than a closed pool's error.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed by Close, stops Follow

	// known holds topics this process put in the topic set, so that
	// Append adds each once, not with every record.
	observe  atomic.Pointer[func(string, time.Duration)] // see ObserveRoundTrips
	hookOnce sync.Once

	knownMu sync.Mutex
	known   map[string]bool

	// trimMu serializes Trim, which walks the topic set from trimCursor.
	trimMu     sync.Mutex
	trimCursor uint64
	trimLimit  int // maxTrimTopics when 0; tests set it lower

	// pfx are Config.PatternPrefixes, longest first; posKeys caches
	// pattern position keys (see index.go).
	pfx     []string
	posKeys sync.Map
	posN    atomic.Int64

	// silent appends without publishing: tests use it to make the events
	// that pub/sub loses.
	silent bool
}

var (
	_ store.Store = (*Store)(nil)
	_ store.Feed  = (*Store)(nil)
)

// maxKnown bounds Store.known; past it the set starts over (an SADD of a
// topic already in the set is harmless).
const maxKnown = 1 << 16

// Open checks that Redis answers, loads the scripts into every master, and
// returns the store. On error it closes c.Client.
func Open(ctx context.Context, c Config) (*Store, error) {
	if c.Client == nil {
		return nil, errors.New("redis store: no client")
	}
	s := &Store{
		c:       c.Client,
		r:       c.Retention,
		window:  c.Retention.IdempotencyWindow,
		prefix:  c.Prefix,
		minRepl: c.MinReplicas,
		replTO:  c.ReplicaTimeout,
		closing: make(chan struct{}),
		known:   map[string]bool{},
	}
	s.cluster, _ = c.Client.(*goredis.ClusterClient)
	if s.window <= 0 {
		s.window = store.DefaultIdempotencyWindow
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.replTO <= 0 {
		s.replTO = DefaultReplicaTimeout
	}
	if strings.ContainsAny(s.prefix, "{}") {
		_ = c.Client.Close()
		return nil, fmt.Errorf("redis store: prefix %q contains { or }", s.prefix)
	}
	if err := s.setPrefixes(c.PatternPrefixes); err != nil {
		_ = c.Client.Close()
		return nil, err
	}
	if err := s.loadScripts(ctx); err != nil {
		_ = c.Client.Close()
		return nil, fmt.Errorf("redis store: open: %w", unavailable(err))
	}
	return s, nil
}

// loadScripts loads the scripts into every master, so that EVALSHA finds
// them (Redis forgets them on restart; Append loads them again on
// NOSCRIPT). On a Cluster, masters that cannot be reached are skipped
// while one can: the others' topics go on.
func (s *Store) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c goredis.Scripter) error {
		for _, sc := range scripts {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return err
			}
		}
		return nil
	}
	if s.cluster == nil {
		return load(ctx, s.c)
	}
	var mu sync.Mutex
	var loaded int
	var errs []error
	_ = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		err := load(ctx, c)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Options().Addr, err))
		} else {
			loaded++
		}
		return nil
	})
	if loaded == 0 {
		return errors.Join(append(errs, errors.New("no master reachable"))...)
	}
	return nil
}

// topicKeys are the names of one topic's keys.
type topicKeys struct {
	base   string // <prefix>:{<tag>}
	meta   string
	stream string
}

func (s *Store) keys(topic string) topicKeys {
	if ix, ok := s.indexOf(topic); ok {
		return s.indexedKeys(topic, ix)
	}
	base := s.prefix + ":{" + tag(topic) + "}"
	return topicKeys{base: base, meta: base + ":m", stream: base + ":s"}
}

func (k topicKeys) idem(key string) string { return k.base + ":k:" + key }

// tag escapes the bytes that would end a hash tag early or be mistaken
// for an escape.
func tag(topic string) string {
	if !strings.ContainsAny(topic, "%{}") {
		return topic
	}
	return strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D").Replace(topic)
}

func (s *Store) topicSet() string { return s.prefix + ":topics" }

func (s *Store) channel() string { return s.prefix + ":feed" }

// begin checks ctx and Close and holds mu for reading; the caller calls
// the returned function when done.
func (s *Store) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, store.ErrClosed
	}
	return s.mu.RUnlock, nil
}

// Ping asks Redis for PONG. On a Cluster it is enough that one master
// answers and the cluster's state is ok: with a master down (and
// cluster-require-full-coverage no) the other masters' topics go on, and
// a hub that reported itself unready would take them down too.
func (s *Store) Ping(ctx context.Context) error {
	end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	if s.cluster != nil {
		err = s.pingCluster(ctx)
	} else {
		err = s.c.Ping(ctx).Err()
	}
	if err != nil {
		err = unavailable(err)
		s.reload(err)
		return fmt.Errorf("redis store: ping: %w", err)
	}
	return nil
}

func (s *Store) pingCluster(ctx context.Context) error {
	var mu sync.Mutex
	var up *goredis.Client
	var errs []error
	_ = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error {
		err := c.Ping(ctx).Err()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Options().Addr, err))
		} else if up == nil {
			up = c
		}
		return nil
	})
	if up == nil {
		return errors.Join(append(errs, errors.New("no master answers"))...)
	}
	info, err := up.ClusterInfo(ctx).Result()
	if err != nil {
		return err
	}
	if strings.Contains(info, "cluster_state:fail") {
		return fmt.Errorf("%s reports cluster_state:fail (a master down with cluster-require-full-coverage yes, or no majority)", up.Options().Addr)
	}
	return nil
}

// Close waits for calls in progress, stops Follow and closes the client.
// A second Close returns store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	close(s.closing)
	if err := s.c.Close(); err != nil {
		return fmt.Errorf("redis store: close: %w", err)
	}
	return nil
}

// reload asks a Cluster client to read the slot map again after err: with
// retries off, go-redis would otherwise keep sending a failed master's
// slots to it until its periodic reload (a minute), long after a replica
// took over.
func (s *Store) reload(err error) {
	if s.cluster != nil && errors.Is(err, ErrUnavailable) {
		s.cluster.ReloadState(context.Background())
	}
}

// unavailable wraps an error from go-redis with ErrUnavailable, unless it
// is the context's own.
func unavailable(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) && !isNetTimeout(err) {
		return err
	}
	if errors.Is(err, goredis.ErrClosed) {
		return store.ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isNoScript reports whether Redis did not know a script (it restarted, or
// its script cache was flushed).
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}
