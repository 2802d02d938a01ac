package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/policy"
)

// testNow is the fixed clock of the JWT tests.
var testNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

// hs256 is the verification key list of one HS256 secret without a kid.
func hs256(secret []byte) []Key { return []Key{{Algorithm: "HS256", Secret: secret}} }

// rsaPriv is generated once: 2048-bit keys take a while.
var rsaPriv = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// signer holds a private key and the verification Key that goes with it.
type signer struct {
	priv any
	key  Key
}

func newSigner(t testing.TB, alg, kid string) signer {
	t.Helper()
	s := signer{key: Key{ID: kid, Algorithm: alg}}
	switch alg {
	case "HS256", "HS384", "HS512":
		n := map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}[alg]
		secret := make([]byte, n)
		rand.Read(secret)
		s.priv, s.key.Secret = secret, secret
	case "RS256", "PS256":
		s.priv, s.key.Public = rsaPriv(), &rsaPriv().PublicKey
	case "ES256", "ES384":
		curve := elliptic.P256()
		if alg == "ES384" {
			curve = elliptic.P384()
		}
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.priv, s.key.Public = k, &k.PublicKey
	case "EdDSA":
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.priv, s.key.Public = priv, pub
	default:
		t.Fatalf("no signer for %s", alg)
	}
	return s
}

// sign signs claims with s, with s's kid in the header when it has one.
func (s signer) sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	return signWith(t, s.key.Algorithm, s.key.ID, s.priv, claims)
}

func signWith(t testing.TB, alg, kid string, priv any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatalf("sign %s: %v", alg, err)
	}
	return s
}

// claims returns a valid claim set at testNow, changed by the given pairs:
// a nil value deletes the claim.
func claims(kv ...any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub": "alice",
		"iat": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
		"sseguard": map[string]any{
			"subscribe": []string{"news"},
		},
	}
	for i := 0; i+1 < len(kv); i += 2 {
		name := kv[i].(string)
		if kv[i+1] == nil {
			delete(c, name)
			continue
		}
		c[name] = kv[i+1]
	}
	return c
}

// checkRefused fails unless prob is a 401 with code and a detail that
// contains detail, never the token.
func checkRefused(t *testing.T, p *Principal, prob *policy.Problem, tok, code, detail string) {
	t.Helper()
	if prob == nil {
		t.Fatalf("accepted as %+v; want %s", p, code)
	}
	if prob.Status != 401 || prob.Code != code {
		t.Fatalf("got %d %s (%v); want 401 %s", prob.Status, prob.Code, prob, code)
	}
	if !strings.Contains(prob.Detail, detail) {
		t.Errorf("detail %q; want it to contain %q", prob.Detail, detail)
	}
	if prob.Err == nil {
		t.Error("the problem has no cause for the log")
	}
	for _, part := range strings.Split(tok, ".") {
		if len(part) > 8 && strings.Contains(prob.Detail, part) {
			t.Fatal("token material leaked into the problem detail")
		}
	}
}

func rsaGenerate(bits int) (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, bits) }

func mustECDSA(t testing.TB, alg string) *ecdsa.PrivateKey {
	t.Helper()
	return newSigner(t, alg, "").priv.(*ecdsa.PrivateKey)
}

func make32(c byte) []byte { return []byte(strings.Repeat(string(c), 32)) }

// spliceSignature returns head's header and claims with sig's signature.
func spliceSignature(head, sig string) string {
	return head[:strings.LastIndexByte(head, '.')] + sig[strings.LastIndexByte(sig, '.'):]
}

// rawToken builds a token from literal JSON header and claims.
func rawToken(header, claims, sig string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "." + sig
}

func unsignedWithKid(t testing.TB, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodNone, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signWithHeader signs valid claims with one extra header field.
func signWithHeader(t testing.TB, alg string, priv any, name string, value any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims())
	tok.Header[name] = value
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func withHeader(t testing.TB, s signer, name string, value any) string {
	t.Helper()
	return signWithHeader(t, s.key.Algorithm, s.priv, name, value)
}

// attackerJWK is an ES256 token signed by a fresh key that it carries in
// its own jwk header, as in CVE-2018-0114.
func attackerJWK(t testing.TB) string {
	t.Helper()
	k := mustECDSA(t, "ES256")
	enc := base64.RawURLEncoding
	jwk := map[string]string{
		"kty": "EC", "crv": "P-256",
		"x": enc.EncodeToString(k.X.FillBytes(make([]byte, 32))),
		"y": enc.EncodeToString(k.Y.FillBytes(make([]byte, 32))),
	}
	return signWithHeader(t, "ES256", k, "jwk", jwk)
}
