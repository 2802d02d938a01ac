package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/idna"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
)

// The sections below are shared by the files of sseguard serve and
// sseguard proxy: each has one Fill for its defaults and one Validate, so
// that a key means the same and is refused the same way in both. Validate
// takes the section's path in its file ("auth", or "" for keys at the top
// level) to name the fields of its errors.

// Policy selects the header policy. Both files have its keys at the top
// level.
type Policy struct {
	// Profile is the header policy: strict (default) or baseline.
	Profile string `yaml:"profile"`
	// Accept overrides the profile's Accept mode: strict or lenient.
	// Default empty: the profile's mode.
	Accept string `yaml:"accept"`
}

// Fill sets the defaults.
func (p *Policy) Fill() { setStr(&p.Profile, "strict") }

// Validate checks the section; see the note above Policy.
func (p *Policy) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	if _, err := policy.Lookup(p.Profile); err != nil {
		pr.add("profile", "want strict or baseline, got %q", p.Profile)
	}
	if err := ApplyAccept(policy.Strict.Clone(), p.Accept); err != nil {
		pr.add("accept", "%v", err)
	}
	return pr.err()
}

// ProfileFor returns a copy of the header profile that profile names,
// with the accept key, the TLS section's HSTS and the CORS allowlist (who
// may read refusals) applied, for the caller to change (serve sets its
// poll fallback on it, for instance: ProfileFor sets none). It expects a
// validated section: an unknown profile gives strict, and an unknown
// accept value is ignored.
func (p Policy) ProfileFor(t TLS, cors CORS) *policy.Profile {
	base, err := policy.Lookup(p.Profile)
	if err != nil {
		base = policy.Strict
	}
	c := base.Clone()
	_ = ApplyAccept(c, p.Accept) // validated
	c.SetHSTS(t.HSTSValue())
	c.RefusalOrigins = slices.Clone(cors.AllowedOrigins)
	return c
}

// ApplyAccept sets p's Accept mode from an accept key of a file: "" keeps
// the profile's mode, "strict" and "lenient" set it, anything else is an
// error and leaves p alone. It is the one reading of these words for
// serve, proxy and scan policy files.
func ApplyAccept(p *policy.Profile, accept string) error {
	switch accept {
	case "":
	case "strict":
		p.Accept = policy.AcceptStrict
	case "lenient":
		p.Accept = policy.AcceptLenient
	default:
		return fmt.Errorf("want strict or lenient, got %q", accept)
	}
	return nil
}

// Tokens configures token verification: the part of the auth section
// that serve and proxy share. Tokens are verified by package auth.
type Tokens struct {
	// Cookie is the cookie that may carry the token. Default sseguard_token.
	Cookie string `yaml:"cookie"`
	// QueryParam lets the token come from this query parameter. Default
	// empty: off, because URLs are logged by proxies.
	QueryParam string `yaml:"query_param"`
	// Keys are verification keys, each with its pinned algorithm. Default
	// none (serve adds its secret_file HS256 key).
	Keys []Key `yaml:"keys"`
	// JWKSURL is a JWKS to verify tokens with: an https URL, an http URL
	// whose host is a loopback address or localhost, or a file path; plain
	// http to another host is refused (auth.CheckJWKSURL). Default empty:
	// none.
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
}

// Key is one token verification key.
type Key struct {
	// ID is the kid it matches; empty matches tokens without a kid.
	ID string `yaml:"id"`
	// Algorithm is pinned: one of Algorithms.
	Algorithm string `yaml:"algorithm"`
	// SecretFile holds the HMAC secret (HS*), at least 32 bytes.
	SecretFile string `yaml:"secret_file"`
	// PublicKeyFile holds a PEM public key or certificate (RS*, PS*, ES*,
	// EdDSA).
	PublicKeyFile string `yaml:"public_key_file"`
}

// Algorithms are the token algorithms a key may be pinned to.
var Algorithms = []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"}

// Fill sets the defaults.
func (t *Tokens) Fill() {
	setStr(&t.Cookie, auth.DefaultCookie)
	setDur(&t.JWKSRefresh, 15*time.Minute)
	setDur(&t.Leeway, auth.DefaultLeeway)
	// An empty list in the file means the same as none.
	nilIfEmpty(&t.Keys)
	nilIfEmpty(&t.Audience)
}

// Validate checks the section; see the note above Policy.
func (t *Tokens) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	if t.Cookie == "" || !policy.IsToken(t.Cookie) {
		pr.add("cookie", "want a cookie name, got %q", t.Cookie)
	}
	if strings.ContainsAny(t.QueryParam, "&=#? ") {
		pr.add("query_param", "want a query parameter name, got %q", t.QueryParam)
	}
	for i, k := range t.Keys {
		f := fmt.Sprintf("keys[%d]", i)
		switch {
		case !slices.Contains(Algorithms, k.Algorithm):
			pr.add(f+".algorithm", "want one of %s, got %q", strings.Join(Algorithms, ", "), k.Algorithm)
		case strings.HasPrefix(k.Algorithm, "HS") && (k.SecretFile == "" || k.PublicKeyFile != ""):
			pr.add(f, "an %s key needs secret_file and no public_key_file", k.Algorithm)
		case !strings.HasPrefix(k.Algorithm, "HS") && (k.PublicKeyFile == "" || k.SecretFile != ""):
			pr.add(f, "an %s key needs public_key_file and no secret_file", k.Algorithm)
		}
	}
	if t.JWKSURL != "" {
		if err := auth.CheckJWKSURL(t.JWKSURL); err != nil {
			pr.add("jwks_url", "%v", err)
		}
	}
	for i, a := range t.Audience {
		if a == "" {
			pr.add(fmt.Sprintf("audience[%d]", i), "must not be empty")
		}
	}
	notNegative(pr, "jwks_refresh", t.JWKSRefresh)
	notNegative(pr, "leeway", t.Leeway)
	return pr.err()
}

// AuthConfig returns the section as auth.NewVerifier reads it: the key
// files, the JWKS, the claims checks and the token sources. The caller
// adds what its own file has besides (serve: its secret, anonymous topics
// and client certificates).
func (t *Tokens) AuthConfig() auth.Config {
	c := auth.Config{
		JWKSURL:     t.JWKSURL,
		JWKSRefresh: t.JWKSRefresh.D(),
		Audience:    t.Audience,
		Issuer:      t.Issuer,
		Leeway:      t.Leeway.D(),
		Cookie:      t.Cookie,
		QueryParam:  t.QueryParam,
	}
	for _, k := range t.Keys {
		c.KeyFiles = append(c.KeyFiles, auth.KeyFile{ID: k.ID, Algorithm: k.Algorithm, SecretFile: k.SecretFile, PublicKeyFile: k.PublicKeyFile})
	}
	return c
}

// CORS configures cross-origin access.
type CORS struct {
	// AllowedOrigins is the global allowlist of browser origins
	// ("https://app.example"). A cross-origin request is allowed only when
	// its Origin is here and in the principal's origins. Default empty:
	// same-origin only.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AnonymousOrigins are the origins that may read anonymous topics
	// (serve) or routes without auth (proxy) cross-origin; they must also
	// be in allowed_origins. Default empty.
	AnonymousOrigins []string `yaml:"anonymous_origins"`
	// MaxAge is how long browsers may cache a preflight answer. Default 10m.
	MaxAge Duration `yaml:"max_age"`
}

// Fill sets the defaults.
func (c *CORS) Fill() {
	nilIfEmpty(&c.AllowedOrigins)
	nilIfEmpty(&c.AnonymousOrigins)
	setDur(&c.MaxAge, 10*time.Minute)
}

// Validate checks the section; see the note above Policy.
func (c *CORS) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	checkOrigins(pr, "allowed_origins", c.AllowedOrigins)
	checkOrigins(pr, "anonymous_origins", c.AnonymousOrigins)
	for i, o := range c.AnonymousOrigins {
		if canon, err := CanonicalOrigin(o); err == nil && canon == o && !slices.Contains(c.AllowedOrigins, o) {
			pr.add(fmt.Sprintf("anonymous_origins[%d]", i), "%q is not in %s", o, join(prefix, "allowed_origins"))
		}
	}
	notNegative(pr, "max_age", c.MaxAge)
	return pr.err()
}

// checkOrigins accepts origins as browsers send them in the Origin header:
// scheme://host[:port] in lower case, no default port, no path, query or
// user, never "null" or "*". Origins are compared as exact strings, so
// any other spelling would silently never match; the error names the
// spelling to write instead.
func checkOrigins(pr *problems, field string, origins []string) {
	for i, o := range origins {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch canon, err := CanonicalOrigin(o); {
		case err != nil:
			pr.add(f, "%v", err)
		case canon != o:
			pr.add(f, "got %q, write %q: origins are compared exactly as browsers send them (lower case, no default port, no path or query)", o, canon)
		}
	}
}

// CanonicalOrigin returns origin as a browser serializes it in the Origin
// header: the scheme and host in lower case (an international host in its
// xn-- form), the port only when it is not the scheme's default, and
// nothing after it. It fails on what cannot be an allowed origin: "null",
// "*", another scheme than http or https, no host, a user or password.
func CanonicalOrigin(origin string) (string, error) {
	const want = "want an origin such as https://app.example"
	if origin == "null" || origin == "*" {
		return "", fmt.Errorf("%q is never allowed; %s", origin, want)
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s, got %q", want, origin)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%s (http or https), got %q", want, origin)
	}
	if u.User != nil {
		// Not repeated: it may hold a password.
		return "", errors.New(want + ", without user or password")
	}
	host := strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	} else if !isASCII(host) {
		if host, err = idna.Lookup.ToASCII(host); err != nil {
			return "", fmt.Errorf("%s, got host %q", want, u.Hostname())
		}
	}
	port := u.Port()
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") || port == "" {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
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
	// HSTS is the Strict-Transport-Security value sent on every response
	// when cert_file is set; "off" sends none. Default empty: max-age of
	// one year (policy.DefaultHSTS). It needs cert_file: HSTS is honoured
	// only over HTTPS, so behind a proxy that ends TLS the proxy sends it.
	HSTS string `yaml:"hsts"`
}

// HSTSValue returns the Strict-Transport-Security value t sends, or ""
// for none: without a certificate, or with hsts: off.
func (t TLS) HSTSValue() string {
	switch {
	case t.CertFile == "", t.HSTS == "off":
		return ""
	case t.HSTS == "":
		return policy.DefaultHSTS
	}
	return t.HSTS
}

// Fill sets the defaults.
func (t *TLS) Fill() { setStr(&t.ClientAuth, "optional") }

// Validate checks the section; see the note above Policy.
func (t *TLS) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	if (t.CertFile == "") != (t.KeyFile == "") {
		pr.add("", "cert_file and key_file go together")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		pr.add("client_ca_file", "needs %s and %s", join(prefix, "cert_file"), join(prefix, "key_file"))
	}
	switch t.ClientAuth {
	case "optional", "require":
	default:
		pr.add("client_auth", "want optional or require, got %q", t.ClientAuth)
	}
	if t.HSTS != "" && t.HSTS != "off" {
		if t.CertFile == "" {
			pr.add("hsts", "needs %s: browsers ignore HSTS over plain HTTP; where a proxy ends TLS, set HSTS there", join(prefix, "cert_file"))
		} else if _, err := policy.ParseHSTS(t.HSTS); err != nil {
			pr.add("hsts", "%v (want e.g. %q, or off)", err, policy.DefaultHSTS)
		}
	}
	return pr.err()
}

// RequestLimits bound one request's header and body, against slow and
// oversized requests. Serve has these keys in its limits section, proxy
// at the top level of its file.
type RequestLimits struct {
	// MaxHeaderBytes bounds a request's header. Default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout bounds the time to read a request's header
	// (slowloris). Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds the time to read a request's body (slow
	// bodies); beyond it the client gets a 408 problem. Default 10s.
	ReadBodyTimeout Duration `yaml:"read_body_timeout"`
}

// Fill sets the defaults.
func (l *RequestLimits) Fill() {
	setInt(&l.MaxHeaderBytes, 16<<10)
	setDur(&l.ReadHeaderTimeout, 10*time.Second)
	setDur(&l.ReadBodyTimeout, 10*time.Second)
}

// Validate checks the section; see the note above Policy.
func (l *RequestLimits) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	if l.MaxHeaderBytes < 4096 || l.MaxHeaderBytes > 1<<20 {
		pr.add("max_header_bytes", "want 4096 to 1048576, got %d", l.MaxHeaderBytes)
	}
	notNegative(pr, "read_header_timeout", l.ReadHeaderTimeout)
	notNegative(pr, "read_body_timeout", l.ReadBodyTimeout)
	return pr.err()
}

// Log configures logging.
type Log struct {
	// Format is json or text. Default: text on a terminal, json otherwise.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// Fill sets the defaults.
func (l *Log) Fill() { setStr(&l.Level, "info") }

// Validate checks the section; see the note above Policy.
func (l *Log) Validate(prefix string) error {
	pr := &problems{prefix: prefix}
	switch l.Format {
	case "", "json", "text":
	default:
		pr.add("format", "want json or text, got %q", l.Format)
	}
	// slog reads the level case-insensitively; so do these words.
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		pr.add("level", "want debug, info, warn or error, got %q", l.Level)
	}
	return pr.err()
}

// notNegative refuses a negative duration.
func notNegative(pr *problems, name string, d Duration) {
	if d < 0 {
		pr.add(name, "must not be negative")
	}
}
