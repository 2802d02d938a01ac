package auth

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
)

// JWKS is a JSON Web Key Set (RFC 7517) fetched from a file or an HTTP(S)
// URL, kept in memory and refreshed. The zero value of every field but URL
// is a safe default.
//
// Only signature keys with an "alg" that Algorithms allows are used, each
// pinned to its alg; HMAC keys and "none" never are, so that publishing a
// key set cannot hand out a shared secret or disable signatures. A key
// whose material does not fit its alg, or whose "use" is "enc", is
// skipped. A kid that the set lacks triggers a refetch, at most once per
// MinRefetch, so that a newly rotated key is picked up at once; requests
// that need a key meanwhile wait for that fetch. Keys that a token names
// or carries itself (jku, x5u, jwk headers) are never fetched or used.
//
// Start loads the set and starts the refresh goroutine; Stop, or the end of
// Start's context, stops it.
type JWKS struct {
	// URL is where the key set is: an https:// URL, an http:// URL whose
	// host is a loopback address or "localhost", a file:/// URL, or a plain
	// file path (see CheckJWKSURL). Plain HTTP to any other host is
	// refused, and so is a redirect to one: anyone on the path could swap
	// the keys.
	URL string
	// Refresh is how often the set is fetched again. Zero means 15 min.
	Refresh time.Duration
	// MinRefetch is the least time between two fetches that unknown kids
	// trigger. Zero means 30 s.
	MinRefetch time.Duration
	// Client fetches HTTP URLs. Nil means a client with a 10 s timeout.
	Client *http.Client
	// Algorithms are the algorithms a key from the set may have; a key's
	// own "alg" must be present and in this list. Empty means RS256,
	// PS256, ES256, ES384 and EdDSA. HMAC algorithms and "none" are
	// refused.
	Algorithms []string
	// Logger receives one line when the key set changes and one per failed
	// refresh. Nil means slog.Default().
	Logger *slog.Logger

	set atomic.Pointer[keySet]

	fetchMu   sync.Mutex // serialises fetches
	lastFetch time.Time  // guarded by fetchMu

	runMu   sync.Mutex // guards started, cancel and done
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// keySet is one loaded JWK Set; it is never changed once stored.
type keySet struct {
	keys        map[string]Key
	fingerprint string
	gen         uint64 // bumped when the keys change
}

// Defaults of the JWKS fields.
const (
	DefaultJWKSRefresh    = 15 * time.Minute
	DefaultJWKSMinRefetch = 30 * time.Second
	jwksFetchTimeout      = 10 * time.Second
	maxJWKSBytes          = 1 << 20
)

// defaultJWKSAlgorithms are the algorithms a JWKS key may have when
// JWKS.Algorithms is empty.
var defaultJWKSAlgorithms = []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}

func (j *JWKS) algorithms() []string {
	if len(j.Algorithms) > 0 {
		return j.Algorithms
	}
	return defaultJWKSAlgorithms
}

func (j *JWKS) logger() *slog.Logger {
	if j.Logger != nil {
		return j.Logger
	}
	return slog.Default()
}

// validate checks the configuration, naming the field at fault.
func (j *JWKS) validate() error {
	if j.URL == "" {
		return errors.New("auth: JWKS.URL is empty")
	}
	if _, _, err := j.source(); err != nil {
		return fmt.Errorf("auth: JWKS.URL: %w", err)
	}
	for _, a := range j.Algorithms {
		if !slices.Contains(defaultJWKSAlgorithms, a) {
			return fmt.Errorf("auth: JWKS.Algorithms: %q may not come from a key set (allowed: %s)", a, strings.Join(defaultJWKSAlgorithms, ", "))
		}
	}
	return nil
}

// CheckJWKSURL reports why raw may not be a JWKS.URL, or nil. It allows
// an https URL, an http URL to a loopback host (127.0.0.0/8, ::1 or
// "localhost"), a file:/// URL and a plain file path. The error never
// repeats the URL, which may hold a password.
func CheckJWKSURL(raw string) error {
	_, _, err := jwksSource(raw)
	return err
}

// jwksSource returns the HTTP URL or the file path to read a set from.
func jwksSource(raw string) (httpURL, path string, err error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		if raw == "" {
			return "", "", errors.New("empty")
		}
		return "", raw, nil
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "http", "https", "file":
	default:
		return "", "", fmt.Errorf("scheme %q is not https, http or file", scheme)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", errors.New("not a valid URL") // url's error repeats it
	}
	switch scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return "", "", fmt.Errorf("a file URL names host %q; use file:///path", u.Host)
		}
		return "", u.Path, nil
	}
	if u.Hostname() == "" {
		return "", "", errors.New("the URL has no host")
	}
	if scheme == "http" && !loopbackHost(u.Hostname()) {
		return "", "", fmt.Errorf("plain http to %q: keys fetched without TLS can be swapped on the way; "+
			"use https, or http only to 127.0.0.1, [::1] or localhost", u.Hostname())
	}
	return raw, "", nil
}

// loopbackHost reports whether host, as in a URL, is "localhost" or a
// loopback IP address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkRedirect refuses a redirect that CheckJWKSURL would refuse, so that
// an https key set cannot be moved to plain http, then applies next (or
// net/http's default limit of 10 redirects).
func checkRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		u := req.URL
		if !strings.EqualFold(u.Scheme, "https") && !(strings.EqualFold(u.Scheme, "http") && loopbackHost(u.Hostname())) {
			return fmt.Errorf("redirect to %s://%s refused: a key set is fetched over https, or http on loopback", u.Scheme, u.Hostname())
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
}

func (j *JWKS) source() (httpURL, path string, err error) { return jwksSource(j.URL) }

// redacted is the URL as logs and errors show it: without a password.
func (j *JWKS) redacted() string {
	if u, err := url.Parse(j.URL); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

// Start fetches the key set, and returns an error when that fails or
// yields no usable key. It then refreshes the set every Refresh in a
// goroutine that runs until Stop is called or ctx ends. Start may be
// called once.
func (j *JWKS) Start(ctx context.Context) error {
	if err := j.validate(); err != nil {
		return err
	}
	j.runMu.Lock()
	defer j.runMu.Unlock()
	if j.started {
		return errors.New("auth: JWKS already started")
	}
	if err := j.refresh(ctx); err != nil {
		return err
	}
	if s := j.set.Load(); len(s.keys) == 0 {
		return fmt.Errorf("auth: JWKS %s: no usable key (each needs an alg among %s)", j.redacted(), strings.Join(j.algorithms(), ", "))
	}
	j.started = true
	ctx, j.cancel = context.WithCancel(ctx)
	j.done = make(chan struct{})
	go j.run(ctx, j.done)
	return nil
}

// Stop ends the refresh goroutine and waits for it. The keys stay
// available to Lookup. Stop may be called more than once, and after a
// failed Start.
func (j *JWKS) Stop() {
	j.runMu.Lock()
	cancel, done := j.cancel, j.done
	j.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (j *JWKS) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	every := j.Refresh
	if every <= 0 {
		every = DefaultJWKSRefresh
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := j.refresh(ctx); err != nil && ctx.Err() == nil {
				j.logger().Warn("jwks refresh failed; keeping the last key set", "url", j.redacted(), "err", err)
			}
		}
	}
}

// running reports whether Start succeeded and Stop was not called.
func (j *JWKS) running() bool {
	j.runMu.Lock()
	defer j.runMu.Unlock()
	if !j.started {
		return false
	}
	select {
	case <-j.done:
		return false
	default:
		return true
	}
}

// Lookup returns the key with this kid. A kid of "" finds a key without a
// kid, or the only key of a set that has one. When the set lacks the kid
// and the last fetch is at least MinRefetch old, Lookup fetches the set
// again first (while the refresh goroutine runs).
func (j *JWKS) Lookup(kid string) (Key, bool) {
	return j.lookup(context.Background(), kid)
}

func (j *JWKS) lookup(ctx context.Context, kid string) (Key, bool) {
	if k, ok := j.find(kid); ok || !j.running() {
		return k, ok
	}
	min := j.MinRefetch
	if min <= 0 {
		min = DefaultJWKSMinRefetch
	}
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	// Another request may have fetched while this one waited for the lock.
	if k, ok := j.find(kid); ok || time.Since(j.lastFetch) < min {
		return k, ok
	}
	if err := j.fetchLocked(ctx); err != nil {
		j.logger().Warn("jwks refetch for an unknown kid failed", "url", j.redacted(), "err", err)
	}
	return j.find(kid)
}

func (j *JWKS) find(kid string) (Key, bool) {
	s := j.set.Load()
	if s == nil {
		return Key{}, false
	}
	k, ok := s.keys[kid]
	if !ok && kid == "" && len(s.keys) == 1 {
		for _, k := range s.keys {
			return k, true
		}
	}
	return k, ok
}

// generation changes whenever the key set does; zero for a nil JWKS.
func (j *JWKS) generation() uint64 {
	if j == nil {
		return 0
	}
	if s := j.set.Load(); s != nil {
		return s.gen
	}
	return 0
}

// refresh fetches the set now.
func (j *JWKS) refresh(ctx context.Context) error {
	j.fetchMu.Lock()
	defer j.fetchMu.Unlock()
	return j.fetchLocked(ctx)
}

// fetchLocked reads and parses the set and, when it parsed, replaces the
// current one. A failure keeps the current set. j.fetchMu must be held.
func (j *JWKS) fetchLocked(ctx context.Context) error {
	j.lastFetch = time.Now()
	data, err := j.read(ctx)
	if err != nil {
		return fmt.Errorf("auth: JWKS %s: %w", j.redacted(), err)
	}
	keys, skipped, err := parseJWKS(data, j.algorithms())
	if err != nil {
		return fmt.Errorf("auth: JWKS %s: %w", j.redacted(), err)
	}
	next := &keySet{keys: keys, fingerprint: fingerprint(keys)}
	old := j.set.Load()
	if old != nil && old.fingerprint == next.fingerprint {
		return nil
	}
	if old != nil {
		next.gen = old.gen + 1
	} else {
		next.gen = 1
	}
	j.set.Store(next)
	kids := slices.Sorted(maps.Keys(keys))
	log := j.logger().With("url", j.redacted())
	log.Info("jwks key set loaded", "kids", kids)
	for _, s := range skipped {
		log.Warn("jwks key skipped", "reason", s)
	}
	return nil
}

func (j *JWKS) read(ctx context.Context) ([]byte, error) {
	httpURL, path, err := j.source()
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if httpURL != "" {
		ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/jwk-set+json, application/json")
		client := &http.Client{Timeout: jwksFetchTimeout}
		if j.Client != nil {
			c := *j.Client // a copy, to add the redirect check
			client = &c
		}
		client.CheckRedirect = checkRedirect(client.CheckRedirect)
		res, err := client.Do(req)
		if err != nil {
			return nil, err // net/http hides the URL's password
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", res.StatusCode)
		}
		r = res.Body
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("the key set is larger than %d bytes", maxJWKSBytes)
	}
	return data, nil
}

// parseJWKS returns the usable keys of a JWK Set, by kid, and why the
// others were skipped. The JWK parameters are decoded and checked by
// github.com/MicahParks/jwkset; the algorithm pinning is ours.
func parseJWKS(data []byte, allowed []string) (map[string]Key, []string, error) {
	var set jwkset.JWKSMarshal
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&set); err != nil {
		return nil, nil, fmt.Errorf("malformed key set: %w", err)
	}
	keys := make(map[string]Key, len(set.Keys))
	var skipped []string
	for i, m := range set.Keys {
		skip := func(format string, args ...any) {
			skipped = append(skipped, fmt.Sprintf("keys[%d] (kid %q): ", i, m.KID)+fmt.Sprintf(format, args...))
		}
		alg := string(m.ALG)
		switch {
		case alg == "":
			skip("no alg: a key set's keys must name their algorithm")
			continue
		case !slices.Contains(allowed, alg) || !slices.Contains(defaultJWKSAlgorithms, alg):
			skip("alg %q is not allowed", alg)
			continue
		case m.USE != "" && m.USE != jwkset.UseSig:
			skip("use %q is not sig", m.USE)
			continue
		}
		// Private parameters, if a careless issuer published any, are
		// ignored: only the public key is decoded. No x5u is fetched.
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skip("%v", err)
			continue
		}
		k := Key{ID: m.KID, Algorithm: alg, Public: jwk.Key()}
		if err := k.Validate(); err != nil {
			skip("%v", err)
			continue
		}
		if _, dup := keys[k.ID]; dup {
			skip("another key has this kid")
			continue
		}
		keys[k.ID] = k
	}
	return keys, skipped, nil
}

// fingerprint identifies a key set by its kids, algorithms and public keys.
func fingerprint(keys map[string]Key) string {
	var b strings.Builder
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		k := keys[kid]
		der, _ := x509.MarshalPKIXPublicKey(k.Public)
		fmt.Fprintf(&b, "%q %s %x\n", kid, k.Algorithm, der)
	}
	return b.String()
}
