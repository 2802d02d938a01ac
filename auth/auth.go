// Package auth turns request credentials into a Principal: who is asking
// and which topics it may subscribe and publish to.
//
// Tokens are JWTs verified with github.com/golang-jwt/jwt/v5, the algorithm
// pinned to HS256 with the hub's secret (more algorithms and keys, and mTLS,
// come with the identity work). Claims live under the "sseguard" claim:
//
//	{"sub": "alice", "exp": 1767225600,
//	 "sseguard": {"subscribe": ["news", "chat/*"], "publish": ["chat/alice"]}}
//
// A topic pattern is an exact topic name, "*" for every topic, or a prefix
// ending in "*" ("chat/*" matches "chat/room1" and "chat/a/b").
//
// A token is read from, in order: the Authorization: Bearer header; the
// cookie named by Verifier.Cookie (EventSource cannot send headers, but it
// sends cookies); the query parameter named by Verifier.QueryParam, only
// when one is configured, because URLs end up in logs.
//
// Package auth does not decide CORS or limits (package server does).
package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/policy"
)

// ClaimNamespace is the JWT claim that holds sseguard's permissions.
const ClaimNamespace = "sseguard"

// Permissions are the topic patterns a principal may use.
type Permissions struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// Claims is the JWT claim set sseguard reads.
type Claims struct {
	jwt.RegisteredClaims
	Sseguard Permissions `json:"sseguard"`
}

// Principal is a verified identity with its permissions.
type Principal struct {
	// Subject is the token's sub claim; empty for anonymous access.
	Subject string
	Permissions
	// Expires is when the credentials end; zero means never (anonymous).
	Expires time.Time
	// Anonymous is true when no credentials were sent.
	Anonymous bool
}

// CanSubscribe reports whether p may read topic.
func (p *Principal) CanSubscribe(topic string) bool { return matchAny(p.Subscribe, topic) }

// CanPublish reports whether p may publish to topic.
func (p *Principal) CanPublish(topic string) bool { return matchAny(p.Publish, topic) }

// Match reports whether topic matches pattern: exactly, "*" for any topic,
// or a prefix followed by "*".
func Match(pattern, topic string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(topic, prefix)
	}
	return pattern == topic
}

func matchAny(patterns []string, topic string) bool {
	for _, p := range patterns {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// Verifier authenticates requests. Key is required; the rest have safe
// zero values.
type Verifier struct {
	// Key is the HS256 secret.
	Key []byte
	// Cookie is the name of the cookie that may carry the token; empty
	// means "sseguard_token".
	Cookie string
	// QueryParam, when not empty, lets the token come from this query
	// parameter. Off by default: URLs are logged by every proxy.
	QueryParam string
	// Anonymous are the topic patterns anyone may subscribe to without a
	// token (the demo topic, public feeds). Empty means none.
	Anonymous []string
	// Leeway tolerates clock skew on exp, nbf and iat. Zero means 30 s.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// cache remembers verified tokens until they expire, so that a
	// publisher that sends the same token with every request pays for one
	// signature check, not one per request. Keys are whole tokens,
	// signature included, so nothing unverified can hit the cache.
	mu    sync.Mutex
	cache map[string]*Principal
}

// cacheSize bounds the verified-token cache; when full it starts over.
const cacheSize = 4096

// DefaultCookie is the cookie name used when Verifier.Cookie is empty.
const DefaultCookie = "sseguard_token"

// Authenticate returns the request's principal, an anonymous principal
// with the Anonymous topics when no token was sent, or a 401 problem.
func (v *Verifier) Authenticate(r *http.Request) (*Principal, *policy.Problem) {
	tok := v.token(r)
	if tok == "" {
		return &Principal{Anonymous: true, Permissions: Permissions{Subscribe: v.Anonymous}}, nil
	}
	return v.Verify(tok)
}

// Verify checks a token and returns its principal, or a 401 problem whose
// code says why (token_expired or token_invalid). The principal may be
// shared with other requests that send the same token: do not modify it.
func (v *Verifier) Verify(tok string) (*Principal, *policy.Problem) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	leeway := v.Leeway
	if leeway == 0 {
		leeway = 30 * time.Second
	}
	v.mu.Lock()
	p, ok := v.cache[tok]
	v.mu.Unlock()
	if ok && now().Before(p.Expires.Add(leeway)) {
		return p, nil
	}
	var c Claims
	_, err := jwt.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return v.Key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
	)
	if err != nil {
		code, detail := policy.CodeTokenInvalid, "the token is not valid"
		if errors.Is(err, jwt.ErrTokenExpired) {
			code, detail = policy.CodeTokenExpired, "the token has expired"
		}
		prob := policy.NewProblem(http.StatusUnauthorized, code, detail)
		prob.Err = err
		prob.Header = http.Header{"Www-Authenticate": {`Bearer realm="sseguard"`}}
		return nil, prob
	}
	p = &Principal{Subject: c.Subject, Permissions: c.Sseguard}
	if c.ExpiresAt != nil {
		p.Expires = c.ExpiresAt.Time
	}
	v.mu.Lock()
	if v.cache == nil || len(v.cache) >= cacheSize {
		v.cache = make(map[string]*Principal)
	}
	v.cache[tok] = p
	v.mu.Unlock()
	return p, nil
}

func (v *Verifier) token(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	name := v.Cookie
	if name == "" {
		name = DefaultCookie
	}
	if c, err := r.Cookie(name); err == nil && c.Value != "" {
		return c.Value
	}
	if v.QueryParam != "" {
		return r.URL.Query().Get(v.QueryParam)
	}
	return ""
}

// Mint signs a token for subject with the given permissions, valid for ttl.
func Mint(key []byte, subject string, perms Permissions, ttl time.Duration, now time.Time) (string, error) {
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Sseguard: perms,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	return s, nil
}

// LoadOrCreateSecret reads the HS256 secret at path, or creates one of 32
// random bytes there (mode 0600) when the file does not exist.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("auth: secret %s is %d bytes, want at least 32", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadOrCreateSecret(path)
		}
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: write secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("auth: sync secret: %w", err)
	}
	return b, f.Close()
}
