package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/auth"
)

// A verifier with one ES256 key from an identity provider, which names it
// by kid, and requires the provider's issuer and the hub's audience.
func ExampleVerifier_Authenticate() {
	idp, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	v := &auth.Verifier{
		Keys:     []auth.Key{{ID: "idp-2026", Algorithm: "ES256", Public: &idp.PublicKey}},
		Issuer:   "https://idp.example",
		Audience: []string{"sseguard"},
	}
	if err := v.Validate(); err != nil {
		fmt.Println(err)
		return
	}

	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"sub": "alice", "iss": "https://idp.example", "aud": "sseguard",
		"exp": time.Now().Add(time.Hour).Unix(),
		"sseguard": map[string]any{
			"subscribe": []string{"news", "chat/*"},
			"origins":   []string{"https://app.example", "*"}, // "*" is dropped
		},
	})
	tok.Header["kid"] = "idp-2026"
	signed, _ := tok.SignedString(idp)

	r := httptest.NewRequest("GET", "/events?topic=chat/room1", nil)
	r.Header.Set("Authorization", "Bearer "+signed)
	p, prob := v.Authenticate(r)
	if prob != nil {
		fmt.Println(prob.Code, prob.Detail)
		return
	}
	fmt.Println(p.Source, p.Subject, p.CanSubscribe("chat/room1"), p.CanPublish("chat/room1"), p.Origins)

	// The same token with its alg switched to HS256 and "signed" with
	// anything is refused: the key pins ES256.
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, tok.Claims)
	forged.Header["kid"] = "idp-2026"
	bad, _ := forged.SignedString([]byte("the idp's public key as a secret"))
	_, prob = v.Verify(bad)
	fmt.Println(prob.Code, prob.Detail)
	// Output:
	// jwt alice true false [https://app.example]
	// token_invalid the token's algorithm is not accepted
}

// A key set from the identity provider's JWKS URL (here a file), loaded at
// start and refreshed until the context ends or Stop is called.
func ExampleJWKS() {
	idp, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir, _ := os.MkdirTemp("", "jwks")
	defer os.RemoveAll(dir)
	jwk, _ := jwkset.NewJWKFromKey(&idp.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{ALG: "ES256", KID: "idp-2026"}})
	set, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	path := filepath.Join(dir, "jwks.json")
	os.WriteFile(path, set, 0o600)

	keys := &auth.JWKS{URL: "file://" + path, Refresh: 5 * time.Minute, Logger: slog.New(slog.DiscardHandler)}
	if err := keys.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer keys.Stop()
	v := &auth.Verifier{JWKS: keys}

	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "svc-a", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "idp-2026"
	signed, _ := tok.SignedString(idp)
	p, prob := v.Verify(signed)
	fmt.Println(p.Subject, prob == nil)
	// Output: svc-a true
}
