package auth

import (
	"crypto/ecdsa"
	"encoding/base64"
	"math/big"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/policy"
)

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// respellings returns every other spelling of tok whose last character
// differs from it only in the bits that base64 leaves unused at the end
// of the signature: the spellings a lenient decoder takes for the same
// bytes.
func respellings(t *testing.T, tok string) []string {
	t.Helper()
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		t.Fatalf("the signer wrote a non-canonical signature: %v", err)
	}
	unused := 6*len(sig) - 8*len(raw) // 0, 2 or 4 bits
	last := strings.IndexByte(b64url, sig[len(sig)-1])
	var out []string
	for low := range 1 << unused {
		if c := last&^(1<<unused-1) | low; c != last {
			out = append(out, tok[:len(tok)-1]+string(b64url[c]))
		}
	}
	return out
}

// TestOneSpellingPerToken is finding L9: a token's signature decoded
// leniently verifies under four (or sixteen) spellings, so that a cache or
// a list of tokens keyed by the string is bypassed.
func TestOneSpellingPerToken(t *testing.T) {
	for _, alg := range []string{"HS256", "ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			s := newSigner(t, alg, "")
			tok := s.sign(t, claims())
			others := respellings(t, tok)
			if len(others) == 0 {
				t.Fatalf("%s signatures leave no unused bits; pick another algorithm", alg)
			}
			for _, cached := range []bool{false, true} {
				v := &Verifier{Keys: []Key{s.key}, Now: testClock}
				if cached {
					if _, prob := v.Verify(tok); prob != nil {
						t.Fatalf("the canonical token was refused: %v", prob)
					}
				}
				for _, other := range others {
					p, prob := v.Verify(other)
					checkRefused(t, p, prob, other, policy.CodeTokenInvalid, "malformed")
				}
			}
		})
	}
	t.Run("Mint", func(t *testing.T) {
		tok, err := Mint(key, "alice", Permissions{Subscribe: []string{"news"}}, time.Hour, testNow)
		if err != nil {
			t.Fatal(err)
		}
		v := &Verifier{Keys: hs256(key), Now: testClock}
		for _, other := range respellings(t, tok) {
			p, prob := v.Verify(other)
			checkRefused(t, p, prob, other, policy.CodeTokenInvalid, "malformed")
		}
	})
}

// TestNonCanonicalCharacters covers the other spellings a base64 decoder
// forgives: line breaks (skipped even by a strict decoder; a query
// parameter carries them as %0A), padding and the standard alphabet.
func TestNonCanonicalCharacters(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	tok := hs.sign(t, claims())
	mid := len(tok) - 10
	tests := []struct{ name, tok string }{
		{"LF inside the signature", tok[:mid] + "\n" + tok[mid:]},
		{"CR LF inside the signature", tok[:mid] + "\r\n" + tok[mid:]},
		{"LF inside the header", tok[:5] + "\n" + tok[5:]},
		{"padding", tok + "="},
		{"four parts", tok + ".x"},
		{"space", tok[:mid] + " " + tok[mid:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: []Key{hs.key}, Now: testClock, QueryParam: "access_token"}
			if _, prob := v.Verify(tok); prob != nil {
				t.Fatal(prob)
			}
			p, prob := v.Verify(tt.tok)
			checkRefused(t, p, prob, tt.tok, policy.CodeTokenInvalid, "malformed")
			r := httptest.NewRequest("GET", "/events?access_token="+url.QueryEscape(tt.tok), nil)
			p, prob = v.Authenticate(r)
			checkRefused(t, p, prob, tt.tok, policy.CodeTokenInvalid, "malformed")
		})
	}
}

// signRaw signs literal JSON header and claims with an HS256 secret, so
// that tests can write what no JSON encoder would.
func signRaw(t *testing.T, secret []byte, header, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc.EncodeToString(sig)
}

// TestClaimsAreExact is finding L3: claim names were matched without
// regard to case with the last duplicate winning, so that "SSEGUARD" or a
// second "sub" overrode what a reader of the token saw first.
func TestClaimsAreExact(t *testing.T) {
	hs := newSigner(t, "HS256", "")
	exp := testNow.Add(time.Hour).Unix()
	const header = `{"alg":"HS256","typ":"JWT"}`
	with := func(rest string) string {
		return `{"sub":"alice","exp":` + big.NewInt(exp).String() + rest + `}`
	}

	// Accepted, but the differently spelled names grant nothing.
	accepted := []struct {
		name, claims string
		check        func(p *Principal) bool
	}{
		{"SSEGUARD does not override sseguard", with(`,"sseguard":{"subscribe":["news"]},"SSEGUARD":{"subscribe":["*"],"publish":["*"]}`),
			func(p *Principal) bool {
				return p.CanSubscribe("news") && !p.CanSubscribe("secret") && !p.CanPublish("news")
			}},
		{"Sseguard alone grants nothing", with(`,"Sseguard":{"subscribe":["*"],"publish":["*"]}`),
			func(p *Principal) bool { return !p.CanSubscribe("news") && !p.CanPublish("news") }},
		{"Publish inside sseguard grants nothing", with(`,"sseguard":{"subscribe":["news"],"Publish":["*"]}`),
			func(p *Principal) bool { return p.CanSubscribe("news") && !p.CanPublish("news") }},
		{"SUB is not sub", `{"SUB":"root","exp":` + big.NewInt(exp).String() + `}`,
			func(p *Principal) bool { return p.Subject == "" }},
		{"Jti and ISS are not jti and iss", with(`,"Jti":"j","ISS":"https://evil.example"`),
			func(p *Principal) bool { return p.ID == "" && p.Issuer == "" }},
		{"unknown claims are ignored", with(`,"scope":"x","nested":{"a":[1,{"b":null}]}`),
			func(p *Principal) bool { return p.Subject == "alice" }},
		{"presence inside sseguard grants presence", with(`,"sseguard":{"subscribe":["news"],"presence":true}`),
			func(p *Principal) bool { return p.Presence }},
		{"presence outside sseguard grants nothing", with(`,"presence":true,"sseguard":{"subscribe":["news"]}`),
			func(p *Principal) bool { return !p.Presence }},
		{"Presence inside sseguard grants nothing", with(`,"sseguard":{"Presence":true}`),
			func(p *Principal) bool { return !p.Presence }},
	}
	for _, tt := range accepted {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: []Key{hs.key}, Now: testClock}
			p, prob := v.Verify(signRaw(t, hs.key.Secret, header, tt.claims))
			if prob != nil {
				t.Fatalf("refused: %v", prob)
			}
			if !tt.check(p) {
				t.Fatalf("principal %+v", p)
			}
		})
	}

	refused := []struct {
		name, header, claims, detail string
	}{
		{"EXP is not exp", header, `{"sub":"alice","EXP":` + big.NewInt(exp).String() + `}`, "claim"},
		{"sub twice", header, with(`,"sub":"admin"`), "appears twice"},
		{"sub twice, once escaped", header, with(`,"s\u0075b":"admin"`), "appears twice"},
		{"exp twice", header, with(`,"exp":9999999999`), "appears twice"},
		{"sseguard twice", header, with(`,"sseguard":{"subscribe":["news"]},"sseguard":{"publish":["*"]}`), "appears twice"},
		{"publish twice inside sseguard", header, with(`,"sseguard":{"publish":[],"publish":["*"]}`), "appears twice"},
		{"a name twice deeper down", header, with(`,"x":[{"a":1,"a":2}]`), "appears twice"},
		{"kid twice in the header", `{"alg":"HS256","kid":"","kid":"other"}`, with(""), "appears twice"},
		{"alg twice in the header", `{"alg":"HS384","alg":"HS256"}`, with(""), "appears twice"},
		{"claims not UTF-8", header, `{"sub":"al` + "\xff" + `ice","exp":` + big.NewInt(exp).String() + `}`, "malformed"},
		{"header not UTF-8", `{"alg":"HS256","x":"` + "\xfe" + `"}`, with(""), "malformed"},
		{"exp as a string", header, `{"sub":"alice","exp":"` + big.NewInt(exp).String() + `"}`, "malformed"},
		{"iat as a string", header, with(`,"iat":"1"`), "malformed"},
		{"claims not an object", header, `[1]`, "malformed"},
		{"sseguard not an object", header, with(`,"sseguard":["*"]`), "malformed"},
		{"presence not a boolean", header, with(`,"sseguard":{"presence":"yes"}`), "malformed"},
		{"data after the claims", header, with("") + `{}`, "malformed"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Keys: []Key{hs.key}, Now: testClock}
			tok := signRaw(t, hs.key.Secret, tt.header, tt.claims)
			p, prob := v.Verify(tok)
			checkRefused(t, p, prob, tok, policy.CodeTokenInvalid, tt.detail)
		})
	}
}

// TestClaimsRoundTrip checks that exact decoding reads back what Mint and
// the Claims type write.
func TestClaimsRoundTrip(t *testing.T) {
	v := &Verifier{Keys: hs256(key), Now: testClock, Issuer: "https://idp.example", Audience: []string{"sseguard"}}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "https://idp.example", Subject: "alice", Audience: jwt.ClaimStrings{"sseguard"}, ID: "j-1",
			IssuedAt: jwt.NewNumericDate(testNow), NotBefore: jwt.NewNumericDate(testNow), ExpiresAt: jwt.NewNumericDate(testNow.Add(time.Hour)),
		},
		Sseguard: Permissions{Subscribe: []string{"news"}, Publish: []string{"chat/*"}, Origins: []string{"https://app.example"}, Presence: true},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	p, prob := v.Verify(tok)
	if prob != nil {
		t.Fatal(prob)
	}
	if p.Subject != "alice" || p.Issuer != "https://idp.example" || p.ID != "j-1" || !p.Expires.Equal(testNow.Add(time.Hour)) ||
		!p.CanSubscribe("news") || !p.CanPublish("chat/a") || len(p.Origins) != 1 || !p.Presence {
		t.Fatalf("principal %+v", p)
	}
}

// flipS returns the other valid ECDSA signature of an ES256 token: (r, n-s)
// for (r, s).
func flipS(t *testing.T, tok string, pub *ecdsa.PublicKey) string {
	t.Helper()
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	s := new(big.Int).SetBytes(sig[32:])
	s.Sub(pub.Curve.Params().N, s)
	s.FillBytes(sig[32:])
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}
