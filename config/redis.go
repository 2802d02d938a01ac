package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// StoreRedis configures store.driver redis: where Redis is (one server,
// Sentinel or Cluster), how to log in, TLS, timeouts and acknowledgement.
// The keys are go-redis's options, as go-redis names them.
type StoreRedis struct {
	// URL is a redis:// or rediss:// URL (or unix:// for a socket),
	// parsed by go-redis: user, password, database and options such as
	// ?dial_timeout=1s may be in it. With cluster: true, more nodes are
	// given as ?addr=host:port. Set url or addrs, not both.
	URL string `yaml:"url"`
	// Addrs are host:port of the server, of the Sentinels (with
	// master_name) or of Cluster nodes (with cluster: true).
	Addrs []string `yaml:"addrs"`
	// MasterName is the Sentinel master set; with it, addrs are Sentinels.
	MasterName string `yaml:"master_name"`
	// Cluster talks to a Redis Cluster: addrs (or url) are seed nodes.
	Cluster bool `yaml:"cluster"`
	// Username and Password log in (ACL or requirepass). Prefer the
	// environment (SSEGUARD_STORE_REDIS_PASSWORD) to the file.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// SentinelUsername and SentinelPassword log in to the Sentinels.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password"`
	// DB is the database number (not on a Cluster).
	DB int `yaml:"db"`
	// TLS turns TLS on for addrs (rediss:// turns it on for url), verified
	// against the system roots or TLSCAFile.
	TLS bool `yaml:"tls"`
	// TLSCAFile is a PEM file of CAs that sign the servers' certificates.
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSCertFile and TLSKeyFile are a client certificate and its key.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// TLSServerName is the name checked in the servers' certificates.
	// Default: the host of each address.
	TLSServerName string `yaml:"tls_server_name"`
	// DialTimeout bounds a connection attempt. Default 2s.
	DialTimeout Duration `yaml:"dial_timeout"`
	// ReadTimeout and WriteTimeout bound each reply and request, so that
	// a Redis that does not answer makes a publish fail with 503 rather
	// than hang. Default 2s.
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// PoolSize is the connections per node. Default 0: go-redis's, 10 per
	// CPU.
	PoolSize int `yaml:"pool_size"`
	// MinReplicas makes a publish wait (WAIT) until that many replicas
	// have the event before it answers 201, and fail with 503 otherwise.
	// Default 0: the master's acknowledgement.
	MinReplicas int `yaml:"min_replicas"`
	// ReplicaTimeout bounds that wait; less than read_timeout. Default 1s.
	ReplicaTimeout Duration `yaml:"replica_timeout"`
	// Prefix starts every key and the pub/sub channel: hubs share events
	// when they share Redis and prefix. Default sseguard.
	Prefix string `yaml:"prefix"`
	// PatternPrefixes are the topic prefixes whose topics can be read by
	// pattern (orders/ serves orders/* and orders/eu/*; "" serves *).
	// Each prefix's topics share one Cluster slot with its index, so one
	// shard takes all their publishes. Changing the list moves topics to
	// other keys: their history restarts with a reset (docs/cluster.md).
	// Default none: patterns are refused with 400 on Redis.
	PatternPrefixes []string `yaml:"pattern_prefixes"`
}

// Fill sets the defaults of the redis section.
func (r *StoreRedis) Fill() {
	setDur(&r.DialTimeout, 2*time.Second)
	setDur(&r.ReadTimeout, 2*time.Second)
	setDur(&r.WriteTimeout, 2*time.Second)
	setDur(&r.ReplicaTimeout, time.Second)
	setStr(&r.Prefix, "sseguard")
	nilIfEmpty(&r.Addrs)
	nilIfEmpty(&r.PatternPrefixes)
}

// Validate checks the section; needed says that store.driver is redis,
// which makes an address required.
func (r *StoreRedis) Validate(prefix string, needed bool) error {
	pr := &problems{prefix: prefix}
	switch {
	case r.URL != "" && len(r.Addrs) > 0:
		pr.add("url", "set url or addrs, not both")
	case needed && r.URL == "" && len(r.Addrs) == 0:
		pr.add("url", "store.driver redis needs url or addrs")
	}
	if r.URL != "" {
		if _, err := r.parseURL(); err != nil {
			pr.add("url", "%v", redactURLError(err, r.URL))
		}
	}
	for i, a := range r.Addrs {
		if host, port, err := net.SplitHostPort(a); err != nil || host == "" || port == "" {
			pr.add(fmt.Sprintf("addrs[%d]", i), "want host:port, got %q", a)
		}
	}
	if r.MasterName != "" && r.Cluster {
		pr.add("master_name", "Sentinel (master_name) and cluster: true exclude each other")
	}
	if r.MasterName != "" && len(r.Addrs) == 0 {
		pr.add("master_name", "needs addrs, the Sentinels")
	}
	if r.Cluster && r.DB != 0 {
		pr.add("db", "a Redis Cluster has database 0 only")
	}
	if r.DB < 0 {
		pr.add("db", "must not be negative")
	}
	if (r.TLSCertFile == "") != (r.TLSKeyFile == "") {
		pr.add("tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"dial_timeout", r.DialTimeout}, {"read_timeout", r.ReadTimeout}, {"write_timeout", r.WriteTimeout}, {"replica_timeout", r.ReplicaTimeout}} {
		if d.v <= 0 {
			pr.add(d.name, "must be positive, got %s", d.v.D())
		}
	}
	if r.MinReplicas < 0 {
		pr.add("min_replicas", "must not be negative")
	}
	if r.MinReplicas > 0 && r.ReplicaTimeout >= r.ReadTimeout {
		pr.add("replica_timeout", "must be less than read_timeout (%s): the wait is read as one reply", r.ReadTimeout.D())
	}
	if r.PoolSize < 0 {
		pr.add("pool_size", "must not be negative")
	}
	if strings.ContainsAny(r.Prefix, "{} ") {
		pr.add("prefix", "must not contain {, } or spaces, got %q", r.Prefix)
	}
	if len(r.PatternPrefixes) > maxPatternPrefixes {
		pr.add("pattern_prefixes", "at most %d prefixes, got %d (a pattern's cursor holds a position per prefix it spans)", maxPatternPrefixes, len(r.PatternPrefixes))
	}
	for i, p := range r.PatternPrefixes {
		field := fmt.Sprintf("pattern_prefixes[%d]", i)
		switch {
		case strings.Contains(p, "*"):
			pr.add(field, "a prefix, without '*': orders/ serves orders/*, got %q", p)
		case strings.HasPrefix(p, store.ReservedPrefix):
			pr.add(field, "topics starting with %q are sseguard's own and match no pattern, got %q", store.ReservedPrefix, p)
		case strings.ContainsAny(p, " \t\r\n"):
			pr.add(field, "topics have no spaces, got %q", p)
		case slices.Contains(r.PatternPrefixes[:i], p):
			pr.add(field, "%q is given twice", p)
		}
	}
	if needed && pr.err() == nil {
		if _, field, err := r.tlsConfig(r.TLS || strings.HasPrefix(r.URL, "rediss:")); err != nil {
			pr.add(field, "%v", err)
		}
	}
	return pr.err()
}

// maxPatternPrefixes is store/redis's MaxPatternPrefixes (config does
// not import the Redis store).
const maxPatternPrefixes = 16

// redactURLError keeps a password that go-redis quotes out of the error.
func redactURLError(err error, url string) string {
	msg := err.Error()
	if i := strings.Index(url, "://"); i >= 0 {
		if at := strings.LastIndexByte(url, '@'); at > i {
			msg = strings.ReplaceAll(msg, url[i+3:at], "…")
		}
	}
	return msg
}

func (r *StoreRedis) parseURL() (*goredis.UniversalOptions, error) {
	if r.Cluster {
		o, err := goredis.ParseClusterURL(r.URL)
		if err != nil {
			return nil, err
		}
		return &goredis.UniversalOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize,
		}, nil
	}
	o, err := goredis.ParseURL(r.URL)
	if err != nil {
		return nil, err
	}
	return &goredis.UniversalOptions{
		Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize,
		Dialer: unixDialer(o),
	}, nil
}

// unixDialer keeps a unix:// URL's socket, which UniversalOptions has no
// field for.
func unixDialer(o *goredis.Options) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if o.Network != "unix" {
		return nil
	}
	return func(ctx context.Context, _, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
}

// Options returns go-redis's options for the section (call it on a
// filled, valid section): the URL's or the addrs', then this section's
// keys for what the URL left unset. Retries are off: a retried append
// could store an event twice; the publisher retries with its
// Idempotency-Key instead.
func (r *StoreRedis) Options() (*goredis.UniversalOptions, error) {
	o := &goredis.UniversalOptions{Addrs: r.Addrs}
	if r.URL != "" {
		var err error
		if o, err = r.parseURL(); err != nil {
			return nil, fmt.Errorf("store.redis.url: %s", redactURLError(err, r.URL))
		}
	}
	o.IsClusterMode = r.Cluster
	o.MasterName = r.MasterName
	setStr(&o.Username, r.Username)
	setStr(&o.Password, r.Password)
	o.SentinelUsername, o.SentinelPassword = r.SentinelUsername, r.SentinelPassword
	if o.DB == 0 {
		o.DB = r.DB
	}
	if o.TLSConfig == nil && r.TLS || o.TLSConfig != nil && (r.TLSCAFile != "" || r.TLSCertFile != "" || r.TLSServerName != "") {
		tc, field, err := r.tlsConfig(true)
		if err != nil {
			return nil, fmt.Errorf("store.redis.%s: %w", field, err)
		}
		if o.TLSConfig != nil && tc.ServerName == "" {
			tc.ServerName = o.TLSConfig.ServerName
		}
		o.TLSConfig = tc
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = r.DialTimeout.D()
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = r.ReadTimeout.D()
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = r.WriteTimeout.D()
	}
	if o.PoolSize == 0 {
		o.PoolSize = r.PoolSize
	}
	o.MaxRetries = -1
	o.DialerRetries = 1
	o.ContextTimeoutEnabled = true
	return o, nil
}

// tlsConfig builds the TLS configuration from the tls_* keys; nil when on
// is false. An error names the key it is about in field.
func (r *StoreRedis) tlsConfig(on bool) (tc *tls.Config, field string, err error) {
	if !on {
		return nil, "", nil
	}
	tc = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: r.TLSServerName}
	if r.TLSCAFile != "" {
		pem, err := os.ReadFile(r.TLSCAFile)
		if err != nil {
			return nil, "tls_ca_file", err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, "tls_ca_file", fmt.Errorf("no PEM certificate in %s", r.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if r.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(r.TLSCertFile, r.TLSKeyFile)
		if err != nil {
			return nil, "tls_cert_file", err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, "", nil
}
