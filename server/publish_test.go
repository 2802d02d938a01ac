package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/policy"
)

// TestPublishRefusedBeforeTheBody: a token that may not publish at all is
// answered from the header alone; the server does not wait for (or read)
// a body it would refuse anyway.
func TestPublishRefusedBeforeTheBody(t *testing.T) {
	ts := start(t, nil, nil)
	subOnly := token(t, auth.Permissions{Subscribe: []string{"*"}}, time.Hour)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The header promises a megabyte that never comes.
	_, err = conn.Write([]byte("POST /api/publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Authorization: Bearer " + subOnly + "\r\nContent-Length: 1000000\r\n\r\n{"))
	if err != nil {
		t.Fatal(err)
	}
	// Far less than limits.read_body_timeout (10 s): an answer within it
	// can only come from a check made before the body.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer while the body was pending: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("status %d, want 403", res.StatusCode)
	}
}

// mintJTI signs a publisher token with the given subject (none when empty)
// and jti.
func mintJTI(t *testing.T, sub, jti string) string {
	t.Helper()
	c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ID: jti,
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}, Sseguard: allPerms}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSingleUseTokenScopeAndSpending: a jti is spent only by a publish
// that stored something, and only for its own principal: another
// subject's token with the same jti is not burnt by it.
func TestSingleUseTokenScopeAndSpending(t *testing.T) {
	ts := start(t, func(c *config.Config) { c.Auth.JTIOnce = true }, nil)
	alice := mintJTI(t, "alice", "j-1")
	mallory := mintJTI(t, "mallory", "j-1")
	// A refused request (bad Idempotency-Key, bad type) spends nothing.
	if res, m := ts.publish(t, alice, "t", "x", "Idempotency-Key", strings.Repeat("k", 500)); res.StatusCode != 400 {
		t.Fatalf("bad key: %d %v", res.StatusCode, m)
	}
	if res, m := ts.publish(t, mallory, "t", "x"); res.StatusCode != 201 {
		t.Fatalf("mallory's own token: %d %v", res.StatusCode, m)
	}
	if res, m := ts.publish(t, alice, "t", "x"); res.StatusCode != 201 {
		t.Fatalf("alice's token after a refusal and after mallory used the same jti: %d %v", res.StatusCode, m)
	}
	if res, m := ts.publish(t, alice, "t", "x"); res.StatusCode != 401 || m["error"] != policy.CodeTokenInvalid {
		t.Fatalf("alice's token used twice: %d %v", res.StatusCode, m)
	}
}

// TestTokensWithoutSubjectShareNothing: two different tokens without a
// sub claim are two principals: the same Idempotency-Key from each stores
// two events, and neither learns the other's event ID.
func TestTokensWithoutSubjectShareNothing(t *testing.T) {
	ts := start(t, nil, nil)
	one, two := mintJTI(t, "", "a"), mintJTI(t, "", "b")
	res, m1 := ts.publish(t, one, "t", "from one", "Idempotency-Key", "k")
	if res.StatusCode != 201 {
		t.Fatalf("one: %d %v", res.StatusCode, m1)
	}
	res, m2 := ts.publish(t, two, "t", "from two", "Idempotency-Key", "k")
	if res.StatusCode != 201 || m2["duplicate"] == true || m2["id"] == m1["id"] {
		t.Fatalf("two got %d %v after one's %v: the tokens share a principal", res.StatusCode, m2, m1)
	}
	page, err := ts.store.Read(context.Background(), []string{"t"}, "", 10)
	if err != nil || len(page.Events) != 2 {
		t.Fatalf("stored %d events (%v), want both", len(page.Events), err)
	}
}

// TestIdempotencyKeyReusedForOtherData: a retry (same key, same event) is
// answered with the first ID; the same key for a different event is
// refused with 422, not answered 201 while the new event is dropped.
func TestIdempotencyKeyReusedForOtherData(t *testing.T) {
	ts := start(t, nil, nil)
	tok := token(t, allPerms, time.Hour)
	res, first := ts.publish(t, tok, "t", "first", "Idempotency-Key", "k1")
	if res.StatusCode != 201 {
		t.Fatalf("first: %d %v", res.StatusCode, first)
	}
	res, retry := ts.publish(t, tok, "t", "first", "Idempotency-Key", "k1")
	if res.StatusCode != 201 || retry["id"] != first["id"] || retry["duplicate"] != true {
		t.Fatalf("retry: %d %v, want the first ID as a duplicate", res.StatusCode, retry)
	}
	for _, tc := range []struct{ topic, data string }{{"t", "second"}, {"u", "first"}} {
		res, m := ts.publish(t, tok, tc.topic, tc.data, "Idempotency-Key", "k1")
		if res.StatusCode != 422 || m["error"] != policy.CodeIdempotencyReused {
			t.Fatalf("key reused for %s/%s: %d %v, want 422 %s", tc.topic, tc.data, res.StatusCode, m, policy.CodeIdempotencyReused)
		}
	}
	page, err := ts.store.Read(context.Background(), []string{"t", "u"}, "", 10)
	if err != nil || len(page.Events) != 1 {
		t.Fatalf("stored %d events (%v), want only the first", len(page.Events), err)
	}
}
