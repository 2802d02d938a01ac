package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/policy"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, topic string
		want           bool
	}{
		{"news", "news", true},
		{"news", "news2", false},
		{"*", "anything/at/all", true},
		{"chat/*", "chat/room1", true},
		{"chat/*", "chat/a/b", true},
		{"chat/*", "chat", false},
		{"chat/*", "chatroom", false},
		{"", "", true},
		{"*", "sseguard:dashboard", false},
		{"sseguard:*", "sseguard:dashboard", false},
		{"sseguard:dashboard", "sseguard:dashboard", true},
		{"sseguard:dashboard*", "sseguard:dashboard", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := &Verifier{Keys: hs256(key), Now: func() time.Time { return now }}
	good, _ := Mint(key, "alice", Permissions{Subscribe: []string{"news"}, Publish: []string{"chat/*"}}, time.Hour, now)
	expired, _ := Mint(key, "alice", Permissions{}, time.Minute, now.Add(-time.Hour))
	within, _ := Mint(key, "alice", Permissions{}, time.Minute, now.Add(-time.Minute-10*time.Second)) // leeway 30 s
	forged, _ := Mint([]byte("not the key, but 32 bytes long!!"), "alice", Permissions{}, time.Hour, now)
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "mallory", "exp": now.Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512 := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "x", "exp": now.Add(time.Hour).Unix()})
	hs512Tok, _ := hs512.SignedString(key)
	noExp := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"})
	noExpTok, _ := noExp.SignedString(key)

	tests := []struct {
		name, tok string
		code      string
	}{
		{"good", good, ""},
		{"within leeway", within, ""},
		{"expired", expired, policy.CodeTokenExpired},
		{"forged", forged, policy.CodeTokenInvalid},
		{"alg none", noneTok, policy.CodeTokenInvalid},
		{"other algorithm", hs512Tok, policy.CodeTokenInvalid},
		{"no exp", noExpTok, policy.CodeTokenInvalid},
		{"garbage", "a.b.c", policy.CodeTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, prob := v.Verify(tt.tok)
			if tt.code == "" {
				if prob != nil {
					t.Fatalf("refused: %v", prob)
				}
				return
			}
			if prob == nil || prob.Code != tt.code || prob.Status != http.StatusUnauthorized {
				t.Fatalf("got %v, %v; want %s", p, prob, tt.code)
			}
			if strings.Contains(prob.Detail, tt.tok) {
				t.Fatal("the token leaked into the problem detail")
			}
		})
	}
	p, _ := v.Verify(good)
	if p.Subject != "alice" || !p.CanSubscribe("news") || p.CanSubscribe("chat/x") || !p.CanPublish("chat/x") || p.CanPublish("news") {
		t.Fatalf("permissions wrong: %+v", p)
	}
}

func TestTokenSources(t *testing.T) {
	now := time.Now()
	tok, _ := Mint(key, "bob", Permissions{Subscribe: []string{"x"}}, time.Hour, now)
	tests := []struct {
		name  string
		v     *Verifier
		setup func(r *http.Request)
		anon  bool
		sub   string
	}{
		{"bearer", &Verifier{Keys: hs256(key)}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, false, "bob"},
		{"bearer lower case", &Verifier{Keys: hs256(key)}, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }, false, "bob"},
		{"cookie", &Verifier{Keys: hs256(key)}, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: DefaultCookie, Value: tok}) }, false, "bob"},
		{"query off by default", &Verifier{Keys: hs256(key)}, func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok }, true, ""},
		{"query when enabled", &Verifier{Keys: hs256(key), QueryParam: "access_token"}, func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok }, false, "bob"},
		{"nothing", &Verifier{Keys: hs256(key), Anonymous: []string{"demo"}}, func(*http.Request) {}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/events", nil)
			tt.setup(r)
			p, prob := tt.v.Authenticate(r)
			if prob != nil {
				t.Fatal(prob)
			}
			if p.Anonymous != tt.anon || p.Subject != tt.sub {
				t.Fatalf("principal %+v", p)
			}
			if want := map[bool]string{true: SourceAnonymous, false: SourceJWT}[tt.anon]; p.Source != want {
				t.Fatalf("source %q, want %q", p.Source, want)
			}
			if p.Anonymous && !p.CanSubscribe("demo") && len(tt.v.Anonymous) > 0 {
				t.Fatal("anonymous topics not granted")
			}
		})
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	a, err := LoadOrCreateSecret(path)
	if err != nil || len(a) != 32 {
		t.Fatalf("create: %d bytes, %v", len(a), err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadOrCreateSecret(path)
	if err != nil || string(a) != string(b) {
		t.Fatal("second load returned a different secret")
	}
	if _, err := LoadOrCreateSecret(t.TempDir()); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading a directory: %v", err)
	}
	if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"secret.key"}) {
		t.Fatalf("the folder holds %q; want only secret.key", names)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestShortSecretRefused is finding F8's other half: an empty or short
// secret.key, as a full disk left it, is refused with a message that names
// the file and says how to recover, by both loaders, and is left alone.
func TestShortSecretRefused(t *testing.T) {
	for _, n := range []int{0, 4, 31} {
		path := filepath.Join(t.TempDir(), "secret.key")
		if err := os.WriteFile(path, make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
		for name, load := range map[string]func(string) ([]byte, error){"LoadSecret": LoadSecret, "LoadOrCreateSecret": LoadOrCreateSecret} {
			_, err := load(path)
			if err == nil {
				t.Fatalf("%s: a %d-byte secret was accepted", name, n)
			}
			for _, want := range []string{path, fmt.Sprintf("is %d bytes", n), "delete it", "stop working"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %d bytes: %q lacks %q", name, n, err, want)
				}
			}
		}
		if b, _ := os.ReadFile(path); len(b) != n {
			t.Fatalf("the short file was changed to %d bytes", len(b))
		}
	}
}

// TestLoadSecretNeverCreates checks that LoadSecret, used by sseguard
// token, reports a missing file and creates nothing.
func TestLoadSecretNeverCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data", "secret.key")
	if _, err := LoadSecret(path); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err %v; want one that wraps fs.ErrNotExist and names %s", err, path)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("LoadSecret created %q", names)
	}
	created, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := LoadSecret(path); err != nil || !slices.Equal(got, created) {
		t.Fatalf("LoadSecret: %x, %v; want %x", got, err, created)
	}
}

// failingWrite writes part of the data and then fails as a full disk does.
func failingWrite(w io.Writer, b []byte) error {
	if _, err := w.Write(b[:len(b)/2]); err != nil {
		return err
	}
	return syscall.ENOSPC
}

// TestSecretWriteFailureLeavesNothing is finding F8: ENOSPC while writing
// secret.key left a 0-byte file that failed every later start.
func TestSecretWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.key")
	_, err := loadOrCreateSecret(path, failingWrite)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err %v; want ENOSPC", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Fatalf("a failed write left %q", names)
	}
	// The next start, with room on the disk, creates the secret.
	b, err := LoadOrCreateSecret(path)
	if err != nil || len(b) != 32 {
		t.Fatalf("after the failure: %d bytes, %v", len(b), err)
	}
}

// TestSecretCreatedOnce checks that processes creating the secret at the
// same time all end up with the one on disk.
func TestSecretCreatedOnce(t *testing.T) {
	const n = 8
	path := filepath.Join(t.TempDir(), "secret.key")
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { got[i], errs[i] = LoadOrCreateSecret(path) })
	}
	wg.Wait()
	disk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil || !slices.Equal(got[i], disk) {
			t.Fatalf("creator %d: %x, %v; the file holds %x", i, got[i], errs[i], disk)
		}
	}
	if names := dirNames(t, filepath.Dir(path)); !slices.Equal(names, []string{"secret.key"}) {
		t.Fatalf("the folder holds %q; want only secret.key", names)
	}
}

func BenchmarkVerify(b *testing.B) {
	v := &Verifier{Keys: hs256(key)}
	tok, _ := Mint(key, "bench", Permissions{Publish: []string{"*"}}, time.Hour, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if _, prob := v.Verify(tok); prob != nil {
			b.Fatal(prob)
		}
	}
}

func TestCacheHonoursExpiry(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := &Verifier{Keys: hs256(key), Now: func() time.Time { return now }}
	tok, _ := Mint(key, "alice", Permissions{}, time.Minute, now)
	if _, prob := v.Verify(tok); prob != nil {
		t.Fatal(prob)
	}
	now = now.Add(2 * time.Minute) // past exp and the 30 s leeway
	if _, prob := v.Verify(tok); prob == nil || prob.Code != policy.CodeTokenExpired {
		t.Fatalf("a cached token outlived its expiry: %v", prob)
	}
}

func TestAlgorithmRoundTrip(t *testing.T) {
	for _, alg := range []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg, "k1")
			if err := s.key.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			v := &Verifier{Keys: []Key{s.key}, Now: testClock}
			tok := s.sign(t, claims("jti", "j-1"))
			p, prob := v.Verify(tok)
			if prob != nil {
				t.Fatalf("refused: %v", prob)
			}
			if p.Subject != "alice" || p.Source != SourceJWT || p.ID != "j-1" || !p.CanSubscribe("news") || !p.Expires.Equal(testNow.Add(time.Hour)) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
}

// TestAttacks is the token half of the attack table: each row is a
// token an attacker can make, and each must be refused as token_invalid.
func TestAttacks(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	rs := newSigner(t, "RS256", "")
	es := newSigner(t, "ES256", "")
	der, err := x509.MarshalPKIXPublicKey(rs.key.Public)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	other := newSigner(t, "HS256", "")
	otherRS, err := rsaGenerate(2048)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hsKid := Key{ID: "h", Algorithm: "HS256", Secret: hs.key.Secret}
	rsKid := Key{ID: "r", Algorithm: "RS256", Public: rs.key.Public}

	tests := []struct {
		name   string
		keys   []Key
		tok    string
		detail string
	}{
		{"forged HS256 signature", []Key{hs.key}, other.sign(t, claims()), "signature"},
		{"forged RS256 signature", []Key{rs.key}, signWith(t, "RS256", "", otherRS, claims()), "signature"},
		{"signature of another token", []Key{hs.key}, spliceSignature(hs.sign(t, claims("sub", "mallory")), hs.sign(t, claims())), "signature"},
		{"alg none", []Key{hs.key}, unsigned(claims()), "algorithm"},
		{"alg none with a kid", []Key{hsKid}, unsignedWithKid(t, "h", claims()), "algorithm"},
		{"HS/RS confusion: PEM as the HMAC secret", []Key{rs.key}, signWith(t, "HS256", "", pemBytes, claims()), "algorithm"},
		{"HS/RS confusion: DER as the HMAC secret", []Key{rs.key}, signWith(t, "HS256", "", der, claims()), "algorithm"},
		{"HS/RS confusion with the RSA key's kid", []Key{hsKid, rsKid}, signWith(t, "HS256", "r", pemBytes, claims()), "algorithm"},
		{"RS256 header on an HS256 key", []Key{hsKid, rsKid}, signWith(t, "RS256", "h", rsaPriv(), claims()), "algorithm"},
		{"PS256 token for an RS256 key", []Key{rs.key}, signWith(t, "PS256", "", rsaPriv(), claims()), "algorithm"},
		{"ES384 header for an ES256 key", []Key{es.key}, signWith(t, "ES384", "", mustECDSA(t, "ES384"), claims()), "algorithm"},
		{"HS512 token for an HS256 key", []Key{hs.key}, signWith(t, "HS512", "", hs.key.Secret, claims()), "algorithm"},
		{"unknown algorithm", []Key{hs.key}, rawToken(`{"alg":"XS256","typ":"JWT"}`, `{"sub":"x","exp":9999999999}`, "c2ln"), "algorithm"},
		{"crit header", []Key{hs.key}, withHeader(t, hs, "crit", []string{"exp"}), "extension"},
		{"embedded jwk header is ignored", []Key{es.key}, attackerJWK(t), "signature"},
		{"jku header is ignored", []Key{es.key}, signWithHeader(t, "ES256", mustECDSA(t, "ES256"), "jku", "https://evil.example/jwks.json"), "signature"},
		{"unknown kid", []Key{hsKid}, signWith(t, "HS256", "nope", hs.key.Secret, claims()), "key is not known"},
		{"kid that is not a string", []Key{hsKid}, rawToken(`{"alg":"HS256","kid":7}`, `{"sub":"x","exp":9999999999}`, "c2ln"), "malformed"},
		{"no kid among several keys", []Key{hsKid, rsKid}, hs.sign(t, claims()), "key is not known"},
		{"no exp", []Key{hs.key}, hs.sign(t, claims("exp", nil)), "claim"},
		{"exp of the wrong type", []Key{hs.key}, hs.sign(t, claims("exp", "tomorrow")), "malformed"},
		{"permissions of the wrong type", []Key{hs.key}, hs.sign(t, claims("sseguard", map[string]any{"subscribe": "*"})), "malformed"},
		{"two segments", []Key{hs.key}, "a.b", "malformed"},
		{"garbage", []Key{hs.key}, "a.b.c", "malformed"},
		{"no keys at all", nil, hs.sign(t, claims()), "algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: tt.keys, Now: testClock}
			p, prob := v.Verify(tt.tok)
			checkRefused(t, p, prob, tt.tok, policy.CodeTokenInvalid, tt.detail)
		})
	}
}

func TestClaimChecks(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	tests := []struct {
		name   string
		v      *Verifier
		claims jwt.MapClaims
		code   string // "" means accepted
		detail string
	}{
		{"valid", &Verifier{}, claims(), "", ""},
		{"expired", &Verifier{}, claims("exp", testNow.Add(-time.Hour).Unix()), policy.CodeTokenExpired, "expired"},
		{"expired within the default 30 s leeway", &Verifier{}, claims("exp", testNow.Add(-20*time.Second).Unix()), "", ""},
		{"expired past the default leeway", &Verifier{}, claims("exp", testNow.Add(-40*time.Second).Unix()), policy.CodeTokenExpired, "expired"},
		{"expired within a 2 min leeway", &Verifier{Leeway: 2 * time.Minute}, claims("exp", testNow.Add(-100*time.Second).Unix()), "", ""},
		{"expired past a 5 s leeway", &Verifier{Leeway: 5 * time.Second}, claims("exp", testNow.Add(-10*time.Second).Unix()), policy.CodeTokenExpired, "expired"},
		{"not yet valid", &Verifier{}, claims("nbf", testNow.Add(time.Minute).Unix()), policy.CodeTokenInvalid, "not yet valid"},
		{"nbf within leeway", &Verifier{}, claims("nbf", testNow.Add(20*time.Second).Unix()), "", ""},
		{"issued in the future", &Verifier{}, claims("iat", testNow.Add(time.Minute).Unix()), policy.CodeTokenInvalid, "issued"},
		{"iat within leeway", &Verifier{}, claims("iat", testNow.Add(20*time.Second).Unix()), "", ""},
		{"wrong aud", &Verifier{Audience: []string{"sseguard"}}, claims("aud", "billing"), policy.CodeTokenInvalid, "audience"},
		{"no aud when one is required", &Verifier{Audience: []string{"sseguard"}}, claims(), policy.CodeTokenInvalid, "claim"},
		{"aud list with one accepted", &Verifier{Audience: []string{"a", "sseguard"}}, claims("aud", []string{"billing", "sseguard"}), "", ""},
		{"aud ignored when none configured", &Verifier{}, claims("aud", "billing"), "", ""},
		{"wrong iss", &Verifier{Issuer: "https://idp.example"}, claims("iss", "https://evil.example"), policy.CodeTokenInvalid, "issuer"},
		{"no iss when one is required", &Verifier{Issuer: "https://idp.example"}, claims(), policy.CodeTokenInvalid, "claim"},
		{"right iss and aud", &Verifier{Issuer: "https://idp.example", Audience: []string{"sseguard"}}, claims("iss", "https://idp.example", "aud", "sseguard"), "", ""},
		{"expired and wrong aud says invalid", &Verifier{Audience: []string{"sseguard"}}, claims("aud", "billing", "exp", testNow.Add(-time.Hour).Unix()), policy.CodeTokenInvalid, "audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.v
			v.Keys, v.Now = []Key{hs.key}, testClock
			tok := hs.sign(t, tt.claims)
			p, prob := v.Verify(tok)
			if tt.code == "" {
				if prob != nil {
					t.Fatalf("refused: %v", prob)
				}
				return
			}
			checkRefused(t, p, prob, tok, tt.code, tt.detail)
		})
	}
}

func TestKidSelection(t *testing.T) {
	a := newSigner(t, "HS256", "a")
	b := newSigner(t, "ES256", "b")
	c := newSigner(t, "EdDSA", "c")
	plain := newSigner(t, "HS384", "")
	several := []Key{a.key, b.key, c.key, plain.key}
	tests := []struct {
		name string
		keys []Key
		tok  string
		ok   bool
	}{
		{"kid a", several, a.sign(t, claims()), true},
		{"kid b", several, b.sign(t, claims()), true},
		{"kid c", several, c.sign(t, claims()), true},
		{"no kid picks the key without an ID", several, plain.sign(t, claims()), true},
		{"a's signature under kid b", several, signWith(t, "ES256", "b", mustECDSA(t, "ES256"), claims()), false},
		{"another secret under kid a", several, signWith(t, "HS256", "a", plain.key.Secret[:32], claims()), false},
		{"no kid and no key without an ID", []Key{a.key, b.key}, signWith(t, "HS256", "", a.key.Secret, claims()), false},
		{"no kid and one key with an ID", []Key{a.key}, signWith(t, "HS256", "", a.key.Secret, claims()), true},
		{"a kid and one key without an ID", []Key{plain.key}, signWith(t, "HS384", "x", plain.key.Secret, claims()), false},
		{"two keys share a kid: either verifies", []Key{{ID: "r", Algorithm: "HS256", Secret: a.key.Secret}, {ID: "r", Algorithm: "HS256", Secret: make32('n')}}, signWith(t, "HS256", "r", make32('n'), claims()), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: tt.keys, Now: testClock}
			p, prob := v.Verify(tt.tok)
			if tt.ok != (prob == nil) {
				t.Fatalf("got %+v, %v; want ok=%v", p, prob, tt.ok)
			}
			if prob != nil {
				checkRefused(t, p, prob, tt.tok, policy.CodeTokenInvalid, "")
			}
		})
	}
}

func TestOriginsClaim(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	v := &Verifier{Keys: []Key{hs.key}, Now: testClock}
	tok := hs.sign(t, claims("sseguard", map[string]any{
		"subscribe": []string{"news"},
		"origins":   []string{"https://app.example", "*", "null", "", "https://admin.example"},
	}))
	p, prob := v.Verify(tok)
	if prob != nil {
		t.Fatal(prob)
	}
	if want := []string{"https://app.example", "https://admin.example"}; !slices.Equal(p.Origins, want) {
		t.Fatalf("origins %q, want %q", p.Origins, want)
	}
}

func TestVerifierValidate(t *testing.T) {
	good := newSigner(t, "ES256", "e").key
	tests := []struct {
		name string
		v    *Verifier
		want string // "" means valid
	}{
		{"empty", &Verifier{}, ""},
		{"good keys", &Verifier{Keys: []Key{good, {ID: "h", Algorithm: "HS256", Secret: key}}}, ""},
		{"bad key names its index", &Verifier{Keys: []Key{good, {ID: "h", Algorithm: "HS256", Secret: key[:8]}}}, "Keys[1]"},
		{"JWKS without URL", &Verifier{JWKS: &JWKS{}}, "JWKS.URL"},
		{"JWKS with HS256", &Verifier{JWKS: &JWKS{URL: "/x", Algorithms: []string{"HS256"}}}, "JWKS.Algorithms"},
		{"cert rule without principal", &Verifier{ClientCerts: []CertRule{{}}}, "ClientCerts[0].Principal"},
		{"cert rule with * origin", &Verifier{ClientCerts: []CertRule{{Principal: "a", Permissions: Permissions{Origins: []string{"*"}}}}}, "ClientCerts[0].Origins"},
		{"cert rule with null origin", &Verifier{ClientCerts: []CertRule{{Principal: "a", Permissions: Permissions{Origins: []string{"null"}}}}}, "ClientCerts[0].Origins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v; want it to name %q", err, tt.want)
			}
		})
	}
}

func TestCacheKeepsPrincipalsApart(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	v := &Verifier{Keys: []Key{hs.key}, Now: testClock}
	a, b := hs.sign(t, claims("sub", "a")), hs.sign(t, claims("sub", "b"))
	for range 2 {
		pa, _ := v.Verify(a)
		pb, _ := v.Verify(b)
		if pa == nil || pb == nil || pa.Subject != "a" || pb.Subject != "b" {
			t.Fatalf("got %+v and %+v", pa, pb)
		}
	}
	// A cached token is still refused when its signature is tampered with:
	// the cache key is the whole token.
	forged := spliceSignature(a, b)
	if _, prob := v.Verify(forged); prob == nil {
		t.Fatal("a token with another token's signature hit the cache")
	}
}
