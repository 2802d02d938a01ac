package server

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
)

// attackRig is a hub configured with every identity feature: the HS256
// secret, a pinned RS256 key, a JWKS, an audience, an issuer and CORS.
type attackRig struct {
	*testServer
	rsaKey  *rsa.PrivateKey
	rsaPEM  []byte
	jwksKey ed25519.PrivateKey
}

const (
	rigAud    = "sseguard-test"
	rigIss    = "https://id.test"
	rigOrigin = "https://app.test"
)

func newAttackRig(t *testing.T) *attackRig {
	t.Helper()
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	rsaFile := filepath.Join(dir, "rsa.pem")
	if err := os.WriteFile(rsaFile, rsaPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "kid": "jw1", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	t.Cleanup(jwksSrv.Close)
	ts := start(t, func(c *config.Config) {
		c.Auth.Keys = []config.Key{{ID: "rsa", Algorithm: "RS256", PublicKeyFile: rsaFile}}
		c.Auth.JWKSURL = jwksSrv.URL
		c.Auth.Audience = []string{rigAud}
		c.Auth.Issuer = rigIss
		c.CORS.AllowedOrigins = []string{rigOrigin}
	}, nil)
	return &attackRig{testServer: ts, rsaKey: rsaKey, rsaPEM: rsaPEM, jwksKey: priv}
}

// claims returns valid claims for the rig, with perms.
func rigClaims(perms auth.Permissions, mutate func(*auth.Claims)) *auth.Claims {
	now := time.Now()
	c := &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   "mallory",
			Audience:  jwt.ClaimStrings{rigAud},
			Issuer:    rigIss,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
		Sseguard: perms,
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, c *auth.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type attack struct {
	name   string
	method string
	path   string
	header http.Header
	body   string
	status int
	code   string
}

// TestAttackTable runs one named case per attack; each asserts the exact
// status and error code, that no token material comes back, and that
// nothing was stored.
func TestAttackTable(t *testing.T) {
	rig := newAttackRig(t)
	all := auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}, Origins: []string{rigOrigin}}
	topicA := auth.Permissions{Subscribe: []string{"a"}, Publish: []string{"a"}}
	good := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(all, nil))
	forged := good[:strings.LastIndexByte(good, '.')+1] + base64.RawURLEncoding.EncodeToString([]byte("not the signature at all, 32 by"))
	none := sign(t, jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType, rigClaims(all, nil))
	confused := sign(t, jwt.SigningMethodHS256, "rsa", rig.rsaPEM, rigClaims(all, nil))
	expired := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(all, func(c *auth.Claims) {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour))
	}))
	notYet := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(all, func(c *auth.Claims) {
		c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour))
	}))
	wrongAud := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(all, func(c *auth.Claims) { c.Audience = jwt.ClaimStrings{"other"} }))
	wrongIss := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(all, func(c *auth.Claims) { c.Issuer = "https://evil.test" }))
	tokA := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(topicA, nil))
	otherKid := sign(t, jwt.SigningMethodEdDSA, "jw2", rig.jwksKey, rigClaims(all, nil))
	jwksGood := sign(t, jwt.SigningMethodEdDSA, "jw1", rig.jwksKey, rigClaims(all, nil))
	rsaGood := sign(t, jwt.SigningMethodRS256, "rsa", rig.rsaKey, rigClaims(all, nil))
	respelled := respell(good)
	subOnly := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(auth.Permissions{Subscribe: []string{"*"}}, nil))
	exp := time.Now().Add(time.Hour).Unix()
	upperClaim := signRaw(t, fmt.Sprintf(`{"sub":"m","aud":%q,"iss":%q,"exp":%d,"sseguard":{"publish":["a"]},"SSEGUARD":{"publish":["*"]}}`, rigAud, rigIss, exp))
	dupClaim := signRaw(t, fmt.Sprintf(`{"sub":"m","aud":%q,"iss":%q,"exp":%d,"sseguard":{"publish":["a"]},"sseguard":{"publish":["*"]}}`, rigAud, rigIss, exp))
	manyLines := `{"topic":"t","data":"` + strings.Repeat(`\n`, 64000) + `"}`
	ordersTok := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(auth.Permissions{Subscribe: []string{"orders/*"}}, nil))
	euTok := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(auth.Permissions{Subscribe: []string{"orders/eu/*"}}, nil))
	namesTok := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(auth.Permissions{Subscribe: []string{"orders/1", "orders/2"}}, nil))

	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	stream := func(tok string) http.Header {
		h := bearer(tok)
		h.Set("Accept", "text/event-stream")
		return h
	}
	withOrigin := func(h http.Header, origin string) http.Header { h.Set("Origin", origin); return h }
	cookie := func(tok string) http.Header { return http.Header{"Cookie": {auth.DefaultCookie + "=" + tok}} }
	// upgrade makes h a WebSocket handshake, from origin when not empty.
	upgrade := func(h http.Header, origin string) http.Header {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			h.Set("Origin", origin)
		}
		return h
	}

	attacks := []attack{
		{"forged signature is refused", "GET", "/events?topic=secret", stream(forged), "", 401, policy.CodeTokenInvalid},
		{"alg none is refused", "GET", "/events?topic=secret", stream(none), "", 401, policy.CodeTokenInvalid},
		{"HS256 signed with the RS256 public key is refused", "GET", "/events?topic=secret", stream(confused), "", 401, policy.CodeTokenInvalid},
		{"expired token is refused as expired", "GET", "/events?topic=secret", stream(expired), "", 401, policy.CodeTokenExpired},
		{"not-yet-valid token is refused", "GET", "/events?topic=secret", stream(notYet), "", 401, policy.CodeTokenInvalid},
		{"wrong audience is refused", "GET", "/events?topic=secret", stream(wrongAud), "", 401, policy.CodeTokenInvalid},
		{"wrong issuer is refused", "GET", "/events?topic=secret", stream(wrongIss), "", 401, policy.CodeTokenInvalid},
		{"token for topic a cannot subscribe to b", "GET", "/events?topic=b", stream(tokA), "", 403, policy.CodeTopicForbidden},
		{"token for topic a cannot poll b", "GET", "/api/poll?topic=b&after=", bearer(tokA), "", 403, policy.CodeTopicForbidden},
		{"token for topic a cannot publish to b", "POST", "/api/publish", withCT(bearer(tokA)), `{"topic":"b","data":"x"}`, 403, policy.CodeTopicForbidden},
		{"JWKS key for another kid is refused", "GET", "/events?topic=secret", stream(otherKid), "", 401, policy.CodeTokenInvalid},
		{"spoofed Origin is refused", "GET", "/events?topic=secret", withOrigin(stream(good), "https://evil.test"), "", 403, policy.CodeOriginForbidden},
		{"null Origin is refused", "GET", "/events?topic=secret", withOrigin(stream(good), "null"), "", 403, policy.CodeOriginForbidden},
		{"allowed origin the token does not list is refused", "GET", "/api/poll?topic=a&after=", withOrigin(bearer(tokA), rigOrigin), "", 403, policy.CodeOriginForbidden},
		{"oversized publish is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"` + strings.Repeat("x", 2<<20) + `"}`, 413, policy.CodeBodyTooLarge},
		{"CR in type is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"a\rb"}`, 400, policy.CodeInvalidEvent},
		{"LF in type is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"a\nevent: admin"}`, 400, policy.CodeInvalidEvent},
		{"NUL in type is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"a\u0000b"}`, 400, policy.CodeInvalidEvent},
		{"an id cannot be chosen by the publisher", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","id":"1\nevent: admin"}`, 400, policy.CodeBadRequest},
		{"a signature respelled in its padding bits is refused", "GET", "/events?topic=secret", stream(respelled), "", 401, policy.CodeTokenInvalid},
		{"a claim name in another case grants nothing", "POST", "/api/publish", withCT(bearer(upperClaim)), `{"topic":"b","data":"x"}`, 403, policy.CodeTopicForbidden},
		{"a token with a repeated claim is refused", "POST", "/api/publish", withCT(bearer(dupClaim)), `{"topic":"b","data":"x"}`, 401, policy.CodeTokenInvalid},
		{"a 1 KB type is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"` + strings.Repeat("t", 1024) + `"}`, 400, policy.CodeInvalidEvent},
		{"a type that is not a token is refused", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"a b"}`, 400, policy.CodeInvalidEvent},
		{"a publisher cannot fake a reset", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"{}","type":"reset"}`, 400, policy.CodeInvalidEvent},
		{"a publisher cannot fake EventSource's error", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"error"}`, 400, policy.CodeInvalidEvent},
		{"a publisher cannot fake EventSource's open", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"open"}`, 400, policy.CodeInvalidEvent},
		{"a publisher cannot use the hub's own types", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"t","data":"x","type":"sseguard.join"}`, 400, policy.CodeInvalidEvent},
		{"data whose lines would blow up the encoding is refused", "POST", "/api/publish", withCT(bearer(good)), manyLines, 413, policy.CodeBodyTooLarge},
		{"a reserved topic takes no publishes, even from *", "POST", "/api/publish", withCT(bearer(good)), `{"topic":"sseguard:dashboard","data":"x"}`, 403, policy.CodeTopicForbidden},
		{"* does not reach a reserved topic", "GET", "/events?topic=sseguard:dashboard", stream(good), "", 403, policy.CodeTopicForbidden},
		{"a subscribe-only token cannot publish", "POST", "/api/publish", withCT(bearer(subOnly)), `{"topic":"t","data":"x"}`, 403, policy.CodeTopicForbidden},
		{"a stream request with a body is refused", "GET", "/events?topic=secret", stream(good), strings.Repeat("b", 100<<10), 400, policy.CodeBadRequest},
		{"cross-site WebSocket hijacking with a victim's cookie gets no upgrade", "GET", "/ws?topic=secret", upgrade(cookie(good), "https://evil.test"), "", 403, policy.CodeOriginForbidden},
		{"a WebSocket with the cookie and no Origin gets no upgrade", "GET", "/ws?topic=secret", upgrade(cookie(good), ""), "", 403, policy.CodeOriginForbidden},
		{"a WebSocket from the null Origin gets no upgrade", "GET", "/ws?topic=secret", upgrade(bearer(good), "null"), "", 403, policy.CodeOriginForbidden},
		{"a WebSocket from an allowed origin the token does not list gets no upgrade", "GET", "/ws?topic=a", upgrade(bearer(tokA), rigOrigin), "", 403, policy.CodeOriginForbidden},
		{"token for topic a cannot open a WebSocket on b", "GET", "/ws?topic=b", upgrade(bearer(tokA), ""), "", 403, policy.CodeTopicForbidden},
		{"a forged token cannot open a WebSocket", "GET", "/ws?topic=secret", upgrade(bearer(forged), ""), "", 401, policy.CodeTokenInvalid},
		{"a WebSocket request with a body is refused", "GET", "/ws?topic=secret", upgrade(bearer(good), ""), "xx", 400, policy.CodeBadRequest},
		{"query token is ignored on /ws when the option is off", "GET", "/ws?topic=secret&access_token=" + good, upgrade(http.Header{}, ""), "", 401, policy.CodeTokenMissing},
		{"GET /ws without an upgrade is refused", "GET", "/ws?topic=secret", bearer(good), "", 400, policy.CodeBadRequest},
		{"query token is ignored when the option is off", "GET", "/events?topic=secret&access_token=" + good, http.Header{"Accept": {"text/event-stream"}}, "", 401, policy.CodeTokenMissing},
		// Topic patterns: only inside a grant, never reaching reserved
		// topics, never escaping their prefix.
		{"a pattern wider than the grant is refused", "GET", "/events?topic=orders/*", stream(euTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern wider than the grant cannot be polled", "GET", "/api/poll?topic=orders/*&after=", bearer(euTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern wider than the grant gets no WebSocket", "GET", "/ws?topic=orders/*", upgrade(bearer(euTok), ""), "", 403, policy.CodeTopicForbidden},
		{"* is wider than a prefix grant", "GET", "/events?topic=*", stream(ordersTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern is never inside grants of names", "GET", "/events?topic=orders/*", stream(namesTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern that drops the grant's slash is wider", "GET", "/events?topic=orders%2A", stream(ordersTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern cannot name the reserved topics, even for *", "GET", "/events?topic=sseguard:*", stream(good), "", 400, policy.CodeBadRequest},
		{"a pattern cannot name the reserved topics over a WebSocket", "GET", "/ws?topic=sseguard:dash*", upgrade(bearer(good), ""), "", 400, policy.CodeBadRequest},
		{"a cursor from one pattern does not open another", "GET", "/api/poll?topic=admin/*&after=1", bearer(ordersTok), "", 403, policy.CodeTopicForbidden},
		{"a Last-Event-ID from one pattern does not open another", "GET", "/events?topic=*&lastEventId=1", stream(ordersTok), "", 403, policy.CodeTopicForbidden},
		{"a pattern with a .. segment is refused", "GET", "/events?topic=orders/../admin/*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a pattern with encoded .. segments is refused", "GET", "/events?topic=orders%2F..%2Fadmin%2F%2A", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a pattern with a . segment is refused", "GET", "/events?topic=orders/./*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a pattern ending in .. is refused", "GET", "/events?topic=orders/..*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"** is not a pattern", "GET", "/events?topic=orders/**", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a * inside a topic is not a pattern", "GET", "/events?topic=orders/*x", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a * in the middle is not a pattern", "GET", "/events?topic=orders/*/1", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a NUL in a pattern is refused", "GET", "/events?topic=orders/%00*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a space in a pattern is refused", "GET", "/events?topic=orders/%20*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a newline in a pattern is refused", "GET", "/api/poll?topic=orders/%0A*&after=", bearer(ordersTok), "", 400, policy.CodeBadRequest},
		{"a pattern that is not UTF-8 is refused", "GET", "/events?topic=orders/%FF*", stream(ordersTok), "", 400, policy.CodeBadRequest},
		{"a pattern longer than a topic is refused", "GET", "/events?topic=orders/" + strings.Repeat("x", 300) + "*", stream(ordersTok), "", 400, policy.CodeBadRequest},
	}
	ctx := context.Background()
	headBefore, _ := rig.store.Head(ctx, nil)
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			req, _ := http.NewRequest(a.method, rig.base+a.path, strings.NewReader(a.body))
			for k, v := range a.header {
				req.Header[k] = v
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != a.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, a.status, body)
			}
			var p policy.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Code != a.code {
				t.Fatalf("problem %s (%v), want code %s", body, err, a.code)
			}
			for _, secret := range []string{good, tokA, string(testKey), "goroutine", "panic"} {
				if strings.Contains(string(body), secret) {
					t.Fatalf("the answer leaks %q", secret[:min(len(secret), 20)])
				}
			}
			// A refusal is readable by an allowed origin (so that its page
			// can stop on a 401 or 403), never by any other.
			wantACAO := ""
			if o := req.Header.Get("Origin"); o == rigOrigin {
				wantACAO = o
			}
			if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) > 1 || res.Header.Get("Access-Control-Allow-Origin") != wantACAO {
				t.Fatalf("a refusal carries Access-Control-Allow-Origin %q, want %q", got, wantACAO)
			}
			if head, _ := rig.store.Head(ctx, nil); head != headBefore {
				t.Fatalf("something was stored: head %q -> %q", headBefore, head)
			}
		})
	}

	// Attacks over an open socket: each closes it with its code, and
	// nothing is stored, even by a token that may publish.
	for _, a := range []struct {
		name string
		send func(ctx context.Context, c *websocket.Conn) error
		code websocket.StatusCode
	}{
		{"an oversized client message is closed with 1009", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","pad":"`+strings.Repeat("x", 2048)+`"}`))
		}, websocket.StatusMessageTooBig},
		{"a message flood is closed with 1008", func(ctx context.Context, c *websocket.Conn) error {
			for range 50 {
				if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
					return nil // closed while flooding
				}
			}
			return nil
		}, websocket.StatusPolicyViolation},
		{"a binary message is closed with 1003", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2})
		}, websocket.StatusUnsupportedData},
		{"a message that is not JSON is closed with 1008", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte("\x00garbage{"))
		}, websocket.StatusPolicyViolation},
		{"a client message trying to publish is closed with 1008", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"type":"publish","topic":"secret","data":"x"}`))
		}, websocket.StatusPolicyViolation},
		{"an event sent back as a client message is closed with 1008", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"id":"1","topic":"secret","type":"message","data":"x"}`))
		}, websocket.StatusPolicyViolation},
	} {
		t.Run("ws: "+a.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c := rig.dialWS(t, ctx, "topic=secret", bearer(good))
			if err := a.send(ctx, c); err != nil {
				t.Fatal(err)
			}
			if code, reason := closeOf(t, ctx, c); code != a.code {
				t.Fatalf("close %d %q, want %d", code, reason, a.code)
			}
			if head, _ := rig.store.Head(ctx, nil); head != headBefore {
				t.Fatalf("something was stored: head %q -> %q", headBefore, head)
			}
		})
	}
	t.Run("ws: a ping flood is closed with 1008, garbage frames with 1002", func(t *testing.T) {
		// An unmasked frame: RFC 6455 §5.1 requires the server to close.
		var pings []byte
		for range 50 {
			pings = append(pings, 0x89, 0x80, 1, 2, 3, 4) // masked pings, no payload
		}
		if code := rawWSClose(t, rig.testServer, "Bearer "+good, pings); code != websocket.StatusPolicyViolation {
			t.Fatalf("a ping flood: close %d, want %d", code, websocket.StatusPolicyViolation)
		}
		for name, frame := range map[string][]byte{
			"unmasked":        {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
			"reserved opcode": {0x83, 0x80, 1, 2, 3, 4},
			"reserved bit":    {0xA1, 0x80, 1, 2, 3, 4},
		} {
			if code := rawWSClose(t, rig.testServer, "Bearer "+good, frame); code != websocket.StatusProtocolError {
				t.Fatalf("%s frame: close %d, want %d", name, code, websocket.StatusProtocolError)
			}
		}
	})

	// Controls: the same rig accepts what it should, so the refusals above
	// are not an artefact of a broken setup.
	for name, tok := range map[string]string{"HS256": good, "RS256 pinned key": rsaGood, "EdDSA from the JWKS": jwksGood} {
		t.Run("control: "+name+" is accepted", func(t *testing.T) {
			req, _ := http.NewRequest("GET", rig.base+"/api/poll?topic=secret", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("status %d", res.StatusCode)
			}
		})
	}
}

// respell changes the last character of tok's signature in the bits that
// base64url leaves unused after the last byte: a lenient decoder reads the
// same signature, so without strict decoding every token has four
// spellings.
func respell(tok string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	return tok[:len(tok)-1] + string(alphabet[last^1])
}

// signRaw signs payload, a JSON object written by hand (so it can repeat a
// key or change its case), with the test secret.
func signRaw(t *testing.T, payload string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	signing := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload))
	sig, err := jwt.SigningMethodHS256.Sign(signing, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + enc(sig)
}

func withCT(h http.Header) http.Header {
	h.Set("Content-Type", "application/json")
	return h
}

// TestCredentialedCORSNeverWildcard: an allowed origin gets its own origin
// back with credentials, never "*", and Vary: Origin.
func TestCredentialedCORSNeverWildcard(t *testing.T) {
	rig := newAttackRig(t)
	tok := sign(t, jwt.SigningMethodHS256, "", testKey, rigClaims(auth.Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}, Origins: []string{rigOrigin}}, nil))
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/poll?topic=t&after=", ""},
		{"POST", "/api/publish", `{"topic":"t","data":"x"}`},
		{"OPTIONS", "/api/publish", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, rig.base+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Origin", rigOrigin)
			if tc.method == "OPTIONS" {
				req.Header.Set("Access-Control-Request-Method", "POST")
				req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
			} else {
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode >= 300 {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != rigOrigin {
				t.Fatalf("ACAO %q, want exactly %q", got, rigOrigin)
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "true" {
				t.Fatal("credentials not allowed for an allowed origin")
			}
			if !strings.Contains(strings.Join(res.Header.Values("Vary"), ","), "Origin") {
				t.Fatalf("Vary %q lacks Origin", res.Header.Values("Vary"))
			}
			if tc.method == "OPTIONS" && !strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Last-Event-ID") {
				t.Fatalf("preflight allows %q", res.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
	req, _ := http.NewRequest("OPTIONS", rig.base+"/api/publish", nil)
	req.Header.Set("Origin", "https://evil.test")
	req.Header.Set("Access-Control-Request-Method", "POST")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 403 || res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from a foreign origin: %d, ACAO %q", res.StatusCode, res.Header.Get("Access-Control-Allow-Origin"))
	}
}

// TestReplayAcrossTopics: a cursor taken from a stream of topic b, given
// to a stream of topic a, replays only topic a.
func TestReplayAcrossTopics(t *testing.T) {
	ts := start(t, nil, nil)
	pub := token(t, allPerms, time.Hour)
	onlyA := token(t, auth.Permissions{Subscribe: []string{"a"}}, time.Hour)
	first := ts.mustPublish(t, pub, "b", "secret before")
	var wantA []string
	for i := 0; i < 3; i++ {
		ts.mustPublish(t, pub, "b", fmt.Sprint("secret ", i))
		wantA = append(wantA, ts.mustPublish(t, pub, "a", fmt.Sprint("public ", i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=a", http.Header{"Authorization": {"Bearer " + onlyA}, "Last-Event-ID": {first}})
	for _, want := range wantA {
		e := nextEvent(t, p)
		if e.ID != want || strings.Contains(e.Data, "secret") {
			t.Fatalf("replay gave %+v, want only topic a's %s", e, want)
		}
	}
}

// TestDataCannotStartAnEvent: CR and LF in published data never make a
// second event or a field.
func TestDataCannotStartAnEvent(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, p := ts.openStream(t, ctx, "topic=t", http.Header{"Authorization": {"Bearer " + tok}})
	waitSubscribers(t, ts.hub, 1)
	payload := "x\r\n\r\nevent: admin\nid: 999\nretry: 1\r\ndata: injected"
	id := ts.mustPublish(t, tok, "t", payload)
	after := ts.mustPublish(t, tok, "t", "next")
	e := nextEvent(t, p)
	if e.ID != id || e.Type != "message" || e.Data != strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(payload) {
		t.Fatalf("got %+v", e)
	}
	if d, ok := p.Retry(); ok && d == time.Millisecond {
		t.Fatal("the payload set the retry time")
	}
	if e := nextEvent(t, p); e.ID != after {
		t.Fatalf("an extra event arrived: %+v", e)
	}
}

// rawWSClose opens /ws?topic=secret over a raw connection with the
// Authorization value auth, writes frame, and returns the code of the
// close frame the hub answers with.
func rawWSClose(t *testing.T, ts *testServer, authz string, frame []byte) websocket.StatusCode {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /ws?topic=secret HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: %s\r\n\r\n", authz)
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", res.StatusCode)
	}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var ext [2]byte
			_, _ = io.ReadFull(br, ext[:])
			n = int(ext[0])<<8 | int(ext[1])
		case 127:
			t.Fatal("an 8-byte frame length from the hub")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		if h[0]&0x0f == 0x8 {
			if len(payload) < 2 {
				return websocket.StatusNoStatusRcvd
			}
			return websocket.StatusCode(int(payload[0])<<8 | int(payload[1]))
		}
	}
}

// TestAttackPresence: presence reveals nothing that subscribing would
// not, and subjects only to the claim's holder: a topic the token may
// not read is refused as subscribing is; a claim outside the sseguard
// namespace, or a claim without the right to read the topic, shows no
// subjects; publishers cannot fake presence events; presence=1 needs a
// tracked topic named as such.
func TestAttackPresence(t *testing.T) {
	ts := start(t, func(c *config.Config) {
		c.Presence.Topics = []string{"chat/*"}
		c.Presence.FlushInterval = config.Duration(20 * time.Millisecond)
		none := []string{}
		c.Auth.AnonymousSubscribe = &none
	}, nil)
	exp := time.Now().Add(time.Hour).Unix()
	reader := sign(t, jwt.SigningMethodHS256, "", testKey, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "carol", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Sseguard:         auth.Permissions{Subscribe: []string{"chat/*"}}})
	claimOnly := sign(t, jwt.SigningMethodHS256, "", testKey, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "mallory", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Sseguard:         auth.Permissions{Subscribe: []string{"news"}, Presence: true}})
	topLevelClaim := signRaw(t, fmt.Sprintf(`{"sub":"mallory","exp":%d,"presence":true,"sseguard":{"subscribe":["chat/*"]}}`, exp))
	caseClaim := signRaw(t, fmt.Sprintf(`{"sub":"mallory","exp":%d,"sseguard":{"subscribe":["chat/*"],"Presence":true}}`, exp))
	publisher := sign(t, jwt.SigningMethodHS256, "", testKey, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "pub", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Sseguard:         auth.Permissions{Publish: []string{"chat/*"}}})
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	stream := func(tok string) http.Header {
		h := bearer(tok)
		h.Set("Accept", "text/event-stream")
		return h
	}
	ws := func(tok string) http.Header {
		h := bearer(tok)
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", "websocket")
		h.Set("Sec-WebSocket-Version", "13")
		h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		return h
	}
	attacks := []attack{
		{"presence of a topic the token may not read", "GET", "/api/presence?topic=chat/1", bearer(claimOnly), "", 403, policy.CodeTopicForbidden},
		{"presence of a topic without a token", "GET", "/api/presence?topic=chat/1", nil, "", 401, policy.CodeTokenMissing},
		{"presence of a pattern", "GET", "/api/presence?topic=chat/*", bearer(reader), "", 400, policy.CodeBadRequest},
		{"presence of an encoded pattern", "GET", "/api/presence?topic=chat%2F%2A", bearer(reader), "", 400, policy.CodeBadRequest},
		{"presence of two topics, one forbidden", "GET", "/api/presence?topic=chat/1&topic=news", bearer(reader), "", 400, policy.CodeBadRequest},
		{"presence of a reserved topic", "GET", "/api/presence?topic=sseguard:dashboard", bearer(reader), "", 403, policy.CodeTopicForbidden},
		{"publishing an event named sseguard.join", "POST", "/api/publish", withCT(bearer(publisher)), `{"topic":"chat/1","data":"{\"topic\":\"chat/1\",\"count\":0,\"sub\":\"alice\"}","type":"sseguard.join"}`, 400, policy.CodeInvalidEvent},
		{"publishing an event named sseguard.leave", "POST", "/api/publish", withCT(bearer(publisher)), `{"topic":"chat/1","data":"x","type":"sseguard.leave"}`, 400, policy.CodeInvalidEvent},
		{"publishing sseguard.join as a form", "POST", "/api/publish", http.Header{"Authorization": {"Bearer " + publisher}, "Content-Type": {"application/x-www-form-urlencoded"}}, "topic=chat/1&data=x&type=sseguard.join", 400, policy.CodeInvalidEvent},
		{"presence=1 on an untracked topic", "GET", "/events?topic=news&presence=1", stream(claimOnly), "", 400, policy.CodeBadRequest},
		{"presence=1 on a pattern of tracked topics", "GET", "/events?topic=chat/*&presence=1", stream(reader), "", 400, policy.CodeBadRequest},
		{"presence=1 on an untracked topic over a WebSocket", "GET", "/ws?topic=news&presence=1", ws(claimOnly), "", 400, policy.CodeBadRequest},
		{"presence=1 on a topic the token may not read", "GET", "/events?topic=chat/1&presence=1", stream(claimOnly), "", 403, policy.CodeTopicForbidden},
		{"presence=true is not presence=1", "GET", "/events?topic=chat/1&presence=true", stream(reader), "", 400, policy.CodeBadRequest},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			req, _ := http.NewRequest(a.method, ts.base+a.path, strings.NewReader(a.body))
			for k, v := range a.header {
				req.Header[k] = v
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != a.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, a.status, body)
			}
			var p policy.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Code != a.code {
				t.Fatalf("problem %s (%v), want code %s", body, err, a.code)
			}
			if strings.Contains(string(body), "carol") || strings.Contains(string(body), "alice") {
				t.Fatalf("a refusal names a subscriber: %s", body)
			}
		})
	}
	if head, _ := ts.store.Head(context.Background(), nil); head != "" {
		t.Fatalf("a presence event was published: head %q", head)
	}

	// alice is subscribed: only a holder of the claim that may read the
	// topic sees her name.
	aliceRes, _ := ts.openStream(t, context.Background(), "topic=chat/1", http.Header{"Authorization": {"Bearer " + sign(t, jwt.SigningMethodHS256, "", testKey, &auth.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		Sseguard:         auth.Permissions{Subscribe: []string{"chat/1"}}})}})
	if aliceRes.StatusCode != 200 {
		t.Fatalf("alice's stream: %d", aliceRes.StatusCode)
	}
	waitPresence(t, []string{ts.base}, reader, "chat/1", 1, nil)
	for name, tok := range map[string]string{"no claim": reader, "a claim outside the sseguard namespace": topLevelClaim, "a claim spelt Presence": caseClaim} {
		t.Run("subjects absent: "+name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", ts.base+"/api/presence?topic=chat/1", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil || res.StatusCode != 200 {
				t.Fatalf("%d %s", res.StatusCode, body)
			}
			if _, ok := m["subjects"]; ok || strings.Contains(string(body), "alice") {
				t.Fatalf("subjects shown without the claim: %s", body)
			}
			if string(m["count"]) != "1" {
				t.Fatalf("count %s, want 1", m["count"])
			}
		})
	}
	t.Run("control: the claim's holder sees the subject", func(t *testing.T) {
		holder := sign(t, jwt.SigningMethodHS256, "", testKey, &auth.Claims{
			RegisteredClaims: jwt.RegisteredClaims{Subject: "zed", ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))},
			Sseguard:         auth.Permissions{Subscribe: []string{"chat/*"}, Presence: true}})
		waitPresence(t, []string{ts.base}, holder, "chat/1", 1, []string{"alice"})
	})
}
