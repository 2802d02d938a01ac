// Package auth turns request credentials into a Principal: who is asking,
// which topics it may subscribe and publish to, and which browser origins
// it may stream to.
//
// # Order
//
// [Verifier.Authenticate] looks, in this order, for:
//
//  1. a token (see Token sources). When one is sent, its verdict is final:
//     a bad token is refused with 401 even if the connection also carries a
//     client certificate, so that a client never silently runs with other
//     rights than the ones it asked for;
//  2. a verified TLS client certificate that a [CertRule] maps to
//     permissions (see Client certificates);
//  3. otherwise the request is anonymous and may subscribe to the
//     Verifier's Anonymous topics only.
//
// # Tokens
//
// Tokens are JWTs verified with github.com/golang-jwt/jwt/v5. Every
// verification [Key] pins one algorithm (HS256, HS384, HS512, RS256, PS256,
// ES256, ES384 or EdDSA); a token is verified only by a key whose algorithm
// equals the token's alg header, so "none" is never accepted and an HS256
// token "signed" with an RSA public key is refused (the HS/RS confusion).
// The kid header selects the key among [Verifier.Keys] and, when none of
// them has that ID, the [JWKS] key set, which is fetched from a file or
// URL, refreshed, and refetched when an unknown kid appears.
//
// exp is required; exp, nbf and iat are checked with Verifier.Leeway of
// clock skew; aud and iss are checked when Verifier.Audience and
// Verifier.Issuer are set. An expired token is refused as token_expired,
// every other failure as token_invalid, with a detail that says which
// check failed and never echoes the token.
//
// Claims live under the "sseguard" claim:
//
//	{"sub": "alice", "exp": 1767225600, "jti": "9f2c…",
//	 "sseguard": {"subscribe": ["news", "chat/*"], "publish": ["chat/alice"],
//	              "origins": ["https://app.example"], "presence": true}}
//
// A topic pattern is an exact topic name, "*" for every topic, or a prefix
// ending in "*" ("chat/*" matches "chat/room1" and "chat/a/b"). Origins are
// exact browser origins (scheme://host[:port]); "*" and "null" are dropped
// wherever they appear, because a principal's origins must name sites.
//
// Topics that start with [ReservedPrefix] ("sseguard:dashboard") belong to
// sseguard itself: no pattern with "*" matches them, only a grant that
// names one exactly lets a principal subscribe to it, and no grant lets a
// principal publish to one (the hub publishes there itself).
//
// Claims are decoded exactly: names are case-sensitive ("SSEGUARD" is not
// "sseguard"), and a token whose header or claims repeat a name anywhere is
// refused as malformed, so that no reader of the token can see other claims
// than the ones that were checked. Each part must be canonical unpadded
// base64url (RFC 7515 section 2), so a token has one spelling only.
//
// # Token sources
//
// A token is read from, in order: the Authorization: Bearer header; the
// cookie named by Verifier.Cookie (EventSource cannot send headers, but it
// sends cookies: set it HttpOnly so scripts cannot read it, Secure so it
// never travels in clear, and SameSite=Strict or Lax so other sites cannot
// ride on it); the query parameter named by Verifier.QueryParam, only when
// one is configured, because URLs end up in logs.
//
// # Client certificates
//
// When the server asks for client certificates and the TLS stack verified
// one against its client CA pool (tls.ConnectionState.VerifiedChains is not
// empty), [Verifier.PrincipalFromTLS] names the leaf certificate by, in this
// order, each SAN URI (spiffe://corp/svc/a), each SAN DNS name (compared
// without regard to case), then the subject common name. The first of these
// names that some [CertRule] lists picks that rule; the principal's Subject
// is that name and it expires with the certificate's NotAfter. A
// certificate that no rule names gives no principal: the request is
// anonymous.
//
// Package auth does not decide CORS, limits or one-use token IDs (package
// server does, from Principal.Origins, Principal.Key and Principal.ID).
package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
)

// ClaimNamespace is the JWT claim that holds sseguard's permissions.
const ClaimNamespace = "sseguard"

// Values of Principal.Source.
const (
	SourceJWT       = "jwt"
	SourceMTLS      = "mtls"
	SourceAnonymous = "anonymous"
)

// Permissions are the topic patterns a principal may use and the browser
// origins it may stream to.
type Permissions struct {
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
	// Origins are the browser origins ("https://app.example") this
	// principal may stream to. "*" and "null" are never honoured: the
	// Verifier drops them.
	Origins []string `json:"origins,omitempty"`
	// Presence lets the principal see who is subscribed: the subjects of
	// GET /api/presence and the sub of join and leave events, on the
	// topics it may subscribe to. Without it a principal sees counts
	// only.
	Presence bool `json:"presence,omitempty"`
}

// clean returns p without the origins that may never be granted. It
// allocates only when there is something to drop.
func (p Permissions) clean() Permissions {
	if slices.ContainsFunc(p.Origins, badOrigin) {
		p.Origins = slices.DeleteFunc(slices.Clone(p.Origins), badOrigin)
	}
	return p
}

func badOrigin(o string) bool { return o == "" || o == "*" || o == "null" }

// Claims is the JWT claim set sseguard reads.
type Claims struct {
	jwt.RegisteredClaims
	Sseguard Permissions `json:"sseguard"`
}

// Principal is a verified identity with its permissions.
type Principal struct {
	// Subject is the token's sub claim, or the client certificate's name
	// that matched a CertRule; empty for anonymous access.
	Subject string
	// Issuer is the token's iss claim; empty when it has none or for other
	// sources.
	Issuer string
	Permissions
	// Expires is when the credentials end: the token's exp or the
	// certificate's NotAfter. Zero means never (anonymous).
	Expires time.Time
	// Anonymous is true when no credentials were sent.
	Anonymous bool
	// Source says where the identity came from: SourceJWT, SourceMTLS or
	// SourceAnonymous.
	Source string
	// ID is the token's jti claim, empty when it has none or for other
	// sources; the server may refuse an ID it has already seen. A jti is
	// unique only within its issuer's tokens for one subject, so keep used
	// IDs per Key, not globally.
	ID string

	// signed identifies a token without a sub claim: a hash of its signed
	// part (header and claims, not the signature, which some algorithms let
	// anyone respell). Empty for other principals.
	signed string
}

// AnonymousKey is the Key of every anonymous principal.
const AnonymousKey = "anonymous"

// Key names the principal for per-principal state: limits, idempotency
// keys, used jti values. It is the same on every request that sends the
// same credentials, and never contains a token.
//
//   - a token with a sub claim: its issuer and subject, so that every token
//     issued to one subject shares its limits;
//   - a token without sub: its issuer and a hash of the token's header and
//     claims, so that two such tokens never share anything;
//   - a client certificate: the name that matched a CertRule;
//   - anonymous access: AnonymousKey.
//
// Keys of different kinds never collide: each starts with its source, and
// the names in it are quoted.
func (p *Principal) Key() string {
	switch {
	case p.Anonymous || p.Source == SourceAnonymous:
		return AnonymousKey
	case p.Source == SourceJWT && p.Subject == "" && p.signed != "":
		return SourceJWT + ":" + strconv.Quote(p.Issuer) + ":#" + p.signed
	case p.Source == SourceJWT:
		return SourceJWT + ":" + strconv.Quote(p.Issuer) + ":" + strconv.Quote(p.Subject)
	}
	return p.Source + ":" + strconv.Quote(p.Subject)
}

// ReservedPrefix starts the topics that belong to sseguard itself, such as
// the dashboard's "sseguard:dashboard". Patterns with "*" never match them,
// and CanPublish refuses them.
const ReservedPrefix = store.ReservedPrefix

// Reserved reports whether topic belongs to sseguard itself.
func Reserved(topic string) bool { return strings.HasPrefix(topic, ReservedPrefix) }

// CanSubscribe reports whether p may read topic. A reserved topic needs a
// grant that names it exactly.
func (p *Principal) CanSubscribe(topic string) bool { return matchAny(p.Subscribe, topic) }

// CanPublish reports whether p may publish to topic. It is false for every
// reserved topic, whatever p's grants say: only the hub publishes there.
func (p *Principal) CanPublish(topic string) bool {
	return !Reserved(topic) && matchAny(p.Publish, topic)
}

// Match reports whether topic matches pattern: exactly, "*" for any topic,
// or a prefix followed by "*". A reserved topic matches only the pattern
// that is exactly its name, so that "*" or "sseguard:*" grants no access to
// sseguard's own topics. It is store.Match: grants and subscriptions share
// one grammar.
func Match(pattern, topic string) bool { return store.Match(pattern, topic) }

// CanSubscribePattern reports whether p may subscribe to pattern (a prefix
// followed by "*"): whether one of p's grants covers every topic the
// pattern can match, now and later. A grant of "*" or of a prefix that
// starts the pattern's prefix covers it ("orders/*" is inside "orders/*"
// and "*", not inside "orders/eu/*"); a grant of exact names never does,
// since topics under a pattern appear at any time. Reserved topics match
// no pattern, so no pattern reaches them.
func (p *Principal) CanSubscribePattern(pattern string) bool {
	if !store.IsPattern(pattern) {
		return false
	}
	for _, g := range p.Subscribe {
		if store.IsPattern(g) && store.Covers(g, pattern) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, topic string) bool {
	for _, p := range patterns {
		if Match(p, topic) {
			return true
		}
	}
	return false
}

// Verifier authenticates requests. Every field has a safe zero value: a
// Verifier without keys refuses every token, and one without ClientCerts
// ignores client certificates. Call Validate at start; do not change the
// fields after the first Authenticate or Verify.
type Verifier struct {
	// Keys are the static verification keys, each with its pinned
	// algorithm. Invalid keys (see Key.Validate) are never used.
	Keys []Key
	// JWKS, when not nil, supplies keys for kids that no static key has.
	// Its owner calls Start and Stop; the Verifier only reads it.
	JWKS *JWKS
	// Audience, when not empty, requires the token's aud to contain at
	// least one of these.
	Audience []string
	// Issuer, when not empty, requires the token's iss to equal it.
	Issuer string
	// Leeway tolerates clock skew on exp, nbf and iat. Zero means 30 s.
	// Tokens without exp are always refused.
	Leeway time.Duration
	// Cookie is the name of the cookie that may carry the token; empty
	// means "sseguard_token".
	Cookie string
	// QueryParam, when not empty, lets the token come from this query
	// parameter. Off by default: URLs are logged by every proxy.
	QueryParam string
	// Anonymous are the topic patterns anyone may subscribe to without
	// credentials (the demo topic, public feeds). Empty means none.
	Anonymous []string
	// ClientCerts map verified TLS client certificates to permissions; see
	// PrincipalFromTLS. Empty means client certificates grant nothing.
	ClientCerts []CertRule
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	once    sync.Once
	keys    []Key    // valid static keys: Keys, then Key
	methods []string // every algorithm some key may verify; never nil

	// cache remembers verified tokens until they expire, so that a
	// publisher that sends the same token with every request pays for one
	// signature check, not one per request. Keys are whole tokens,
	// signature included, so nothing unverified can hit the cache, and
	// only tokens that parsed, each in its one canonical spelling, are
	// stored, so another spelling of a cached token misses it. It is
	// emptied when the JWKS key set changes (cacheGen), so a token whose
	// key was rotated out is verified again, and refused.
	mu       sync.Mutex
	cache    map[string]*Principal
	cacheGen uint64
}

// cacheSize bounds the verified-token cache; when full it starts over.
const cacheSize = 4096

// DefaultCookie is the cookie name used when Verifier.Cookie is empty.
const DefaultCookie = "sseguard_token"

// DefaultLeeway is the clock skew tolerated when Verifier.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// Validate reports every configuration error, each naming its field.
func (v *Verifier) Validate() error {
	var errs []error
	for i, k := range v.Keys {
		if err := k.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("auth: Keys[%d] (kid %q): %w", i, k.ID, err))
		}
	}
	if v.JWKS != nil {
		if err := v.JWKS.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	for i, r := range v.ClientCerts {
		if r.Principal == "" {
			errs = append(errs, fmt.Errorf("auth: ClientCerts[%d].Principal is empty", i))
		}
		for _, o := range r.Origins {
			if badOrigin(o) {
				errs = append(errs, fmt.Errorf("auth: ClientCerts[%d].Origins: %q is never allowed; list the sites", i, o))
			}
		}
	}
	return errors.Join(errs...)
}

func (v *Verifier) init() {
	v.once.Do(func() {
		for _, k := range v.Keys {
			if k.Validate() == nil {
				v.keys = append(v.keys, k)
			}
		}
		v.methods = []string{}
		for _, k := range v.keys {
			v.methods = append(v.methods, k.Algorithm)
		}
		if v.JWKS != nil {
			v.methods = append(v.methods, v.JWKS.algorithms()...)
		}
		slices.Sort(v.methods)
		v.methods = slices.Compact(v.methods)
	})
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) leeway() time.Duration {
	if v.Leeway > 0 {
		return v.Leeway
	}
	return DefaultLeeway
}

// Authenticate returns the request's principal: from its token when one is
// sent (or a 401 problem when that token is refused), else from its
// verified client certificate when a CertRule names it, else an anonymous
// principal with the Anonymous topics.
func (v *Verifier) Authenticate(r *http.Request) (*Principal, *policy.Problem) {
	if tok := v.token(r); tok != "" {
		return v.verify(r.Context(), tok)
	}
	if p := v.PrincipalFromTLS(r.TLS); p != nil {
		return p, nil
	}
	return &Principal{Anonymous: true, Source: SourceAnonymous, Permissions: Permissions{Subscribe: v.Anonymous}}, nil
}

// Verify checks a token and returns its principal, or a 401 problem whose
// code says why (token_expired or token_invalid). The principal may be
// shared with other requests that send the same token: do not modify it.
func (v *Verifier) Verify(tok string) (*Principal, *policy.Problem) {
	return v.verify(context.Background(), tok)
}

// verify is Verify with the context of the request, which bounds a JWKS
// refetch that an unknown kid triggers.
func (v *Verifier) verify(ctx context.Context, tok string) (*Principal, *policy.Problem) {
	v.init()
	now, leeway := v.now(), v.leeway()
	gen := v.JWKS.generation()
	v.mu.Lock()
	if v.cacheGen != gen {
		v.cache, v.cacheGen = nil, gen
	}
	p, ok := v.cache[tok]
	v.mu.Unlock()
	if ok && now.Before(p.Expires.Add(leeway)) {
		return p, nil
	}

	if err := canonical(tok); err != nil {
		return nil, v.refusal(err, nil)
	}
	opts := []jwt.ParserOption{
		// Strict: only one base64 spelling of each part verifies (no
		// padding, no stray bits in the last character), so that a
		// token cannot be respelled past a cache or a list of tokens.
		jwt.WithStrictDecoding(),
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
	}
	if len(v.Audience) > 0 {
		opts = append(opts, jwt.WithAudience(v.Audience...))
	}
	if v.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.Issuer))
	}
	var c Claims
	parsed, err := jwt.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) }, opts...)
	if err != nil {
		return nil, v.refusal(err, parsed)
	}
	p = &Principal{
		Subject:     c.Subject,
		Issuer:      c.Issuer,
		Permissions: c.Sseguard.clean(),
		Expires:     c.ExpiresAt.Time, // WithExpirationRequired: never nil here
		Source:      SourceJWT,
		ID:          c.ID,
	}
	if p.Subject == "" {
		p.signed = signedHash(tok)
	}
	v.mu.Lock()
	if v.cacheGen == gen { // else the key set changed meanwhile: do not cache
		if v.cache == nil || len(v.cache) >= cacheSize {
			v.cache = make(map[string]*Principal)
		}
		v.cache[tok] = p
	}
	v.mu.Unlock()
	return p, nil
}

// Reasons a key could not be found for a token; the keyfunc returns them
// and refusal turns them into a detail.
var (
	errUnknownKey   = errors.New("no key has the token's kid")
	errKeyAlgorithm = errors.New("the token's alg is not its key's algorithm")
	errKidType      = errors.New("the kid header is not a string")
	errCritical     = errors.New("the token has a crit header, and no extension is understood")
)

// keyFor selects the key material for t: the static keys with t's kid
// (with no kid and exactly one static key and no JWKS, that key), else the
// JWKS key with that kid. Only keys whose pinned algorithm is the token's
// alg are returned. Keys a token names or carries itself (jku, jwk, x5u,
// x5c) are never used.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok { // RFC 7515 section 4.1.11
		return nil, errCritical
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		if kid, ok = raw.(string); !ok {
			return nil, errKidType
		}
	}
	var cands []Key
	for _, k := range v.keys {
		if k.ID == kid {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 && kid == "" && len(v.keys) == 1 && v.JWKS == nil {
		cands = v.keys
	}
	if len(cands) == 0 && v.JWKS != nil {
		if k, ok := v.JWKS.lookup(ctx, kid); ok {
			cands = append(cands, k)
		}
	}
	if len(cands) == 0 {
		return nil, errUnknownKey
	}
	alg := t.Method.Alg()
	var set []jwt.VerificationKey
	for _, k := range cands {
		if k.Algorithm == alg {
			set = append(set, k.material())
		}
	}
	switch len(set) {
	case 0:
		return nil, errKeyAlgorithm
	case 1:
		return set[0], nil
	}
	return jwt.VerificationKeySet{Keys: set}, nil
}

// refusal turns a parse error into a 401 problem. The detail names the
// failed check; the error, logged but never shown, says more.
func (v *Verifier) refusal(err error, t *jwt.Token) *policy.Problem {
	code, detail := policy.CodeTokenInvalid, "the token is not valid"
	switch {
	case errors.Is(err, errUnknownKey):
		detail = "the token's key is not known"
	case errors.Is(err, errKeyAlgorithm):
		detail = "the token's algorithm is not accepted for its key"
	case errors.Is(err, errDuplicate):
		detail = "the token is malformed: a name appears twice in its header or claims"
	case errors.Is(err, errKidType), errors.Is(err, errNotCanonical), errors.Is(err, jwt.ErrTokenMalformed):
		detail = "the token is malformed"
	case errors.Is(err, errCritical):
		detail = "the token requires an extension that is not supported"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		detail = "the token's signature is not valid"
		if t != nil && t.Method != nil && !slices.Contains(v.methods, t.Method.Alg()) {
			detail = "the token's algorithm is not accepted"
		}
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		detail = "the token's audience is not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		detail = "the token's issuer is not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		detail = "the token lacks a required claim (exp, or aud or iss where required)"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		detail = "the token is not yet valid"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		detail = "the token was issued in the future"
	case errors.Is(err, jwt.ErrTokenExpired):
		code, detail = policy.CodeTokenExpired, "the token has expired"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		detail = "the token's claims are malformed"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		detail = "the token's algorithm is not accepted"
	}
	prob := policy.NewProblem(http.StatusUnauthorized, code, detail)
	prob.Err = err
	prob.Header = http.Header{"Www-Authenticate": {`Bearer realm="sseguard"`}}
	return prob
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

// Mint signs an HS256 token for subject with the given permissions, valid
// for ttl. It is for development tokens from the hub's local key.
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

// MinSecretBytes is the shortest signing secret LoadSecret accepts.
const MinSecretBytes = 32

// LoadSecret reads the HS256 secret at path. A missing file is an error
// that wraps fs.ErrNotExist; a file shorter than MinSecretBytes (an empty
// one is what a full disk left behind before LoadOrCreateSecret wrote
// through a temporary file) is refused with how to fix it.
func LoadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: read secret: %w", err)
	}
	if len(b) < MinSecretBytes {
		return nil, fmt.Errorf("auth: the signing secret %s is %d bytes, want at least %d; "+
			"delete it to have a new one created at the next start (tokens signed with the old one stop working), "+
			"or write at least %d random bytes into it", path, len(b), MinSecretBytes, MinSecretBytes)
	}
	return b, nil
}

// LoadOrCreateSecret reads the HS256 secret at path (see LoadSecret), or
// creates one of 32 random bytes there (mode 0600) when the file does not
// exist. The new secret is written whole to a temporary file in the same
// folder, synced, and only then given its name, so that a crash or a full
// disk never leaves a short secret.key behind. When two processes create
// it at once, both end up with the one that got the name first.
func LoadOrCreateSecret(path string) ([]byte, error) {
	return loadOrCreateSecret(path, writeAll)
}

func writeAll(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// loadOrCreateSecret is LoadOrCreateSecret with the write of the new
// secret injectable, so that tests can fail it as a full disk does.
func loadOrCreateSecret(path string, write func(io.Writer, []byte) error) ([]byte, error) {
	b, err := LoadSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("auth: random: %w", err)
	}
	switch err := createFile(path, b, write); {
	case errors.Is(err, fs.ErrExist): // another process won the race
		return LoadSecret(path)
	case err != nil:
		return nil, fmt.Errorf("auth: create secret: %w", err)
	}
	return b, nil
}

// createFile writes data to a new file at path, mode 0600, atomically: to
// a temporary file in the same folder first, synced, then linked to path,
// which fails with fs.ErrExist when path exists (unlike a rename, which
// would replace a secret another process just created), and the folder is
// synced so that the name survives a crash. On any failure no file is
// left at path and the temporary file is removed.
func createFile(path string, data []byte, write func(io.Writer, []byte) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, path keeps the data
	if err := write(f, data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		// A file system without hard links: rename, which is atomic too.
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// LoadKey reads a key from files: secretFile for an HMAC algorithm, else
// publicKeyFile (PEM). Errors name the field that failed, as a
// configuration's secret_file or public_key_file.
func LoadKey(id, algorithm, secretFile, publicKeyFile string) (Key, error) {
	key := Key{ID: id, Algorithm: algorithm}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return Key{}, fmt.Errorf("secret_file: %w", err)
		}
		key.Secret = b
		return key, nil
	}
	b, err := os.ReadFile(publicKeyFile)
	if err != nil {
		return Key{}, fmt.Errorf("public_key_file: %w", err)
	}
	if key.Public, err = ParsePublicKeyPEM(b); err != nil {
		return Key{}, fmt.Errorf("public_key_file: %w", err)
	}
	return key, nil
}
