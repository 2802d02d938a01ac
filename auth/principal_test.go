package auth

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPrincipalKey is finding L2: every token without sub had one
// principal, so that its holders shared limits and idempotency keys.
func TestPrincipalKey(t *testing.T) {
	es := newSigner(t, "ES256", "")
	v := &Verifier{Keys: []Key{es.key}, Now: testClock}
	verify := func(tok string) *Principal {
		t.Helper()
		p, prob := v.Verify(tok)
		if prob != nil {
			t.Fatal(prob)
		}
		return p
	}
	noSubA := es.sign(t, claims("sub", nil, "jti", "a"))
	noSubB := es.sign(t, claims("sub", nil, "jti", "b"))
	emptySub := es.sign(t, claims("sub", ""))
	alice1 := es.sign(t, claims("jti", "1"))
	alice2 := es.sign(t, claims("jti", "2", "sseguard", map[string]any{"publish": []string{"x"}}))
	aliceIdP := es.sign(t, claims("iss", "https://idp.example"))
	aliceOther := es.sign(t, claims("iss", "https://other.example"))

	t.Run("tokens without sub are apart", func(t *testing.T) {
		a, b, e := verify(noSubA).Key(), verify(noSubB).Key(), verify(emptySub).Key()
		if a == b || a == e || b == e {
			t.Fatalf("keys %q, %q, %q; want three", a, b, e)
		}
		if a == verify(alice1).Key() {
			t.Fatal("a token without sub shares alice's key")
		}
	})
	t.Run("stable across requests and verifiers", func(t *testing.T) {
		first := verify(noSubA).Key()
		if again := verify(noSubA).Key(); again != first { // from the cache
			t.Fatalf("cached %q, first %q", again, first)
		}
		fresh := &Verifier{Keys: []Key{es.key}, Now: testClock}
		p, prob := fresh.Verify(noSubA)
		if prob != nil || p.Key() != first {
			t.Fatalf("another verifier: %v, %v; want %q", p, prob, first)
		}
	})
	t.Run("the other ECDSA signature is the same principal", func(t *testing.T) {
		other := flipS(t, noSubA, es.key.Public.(*ecdsa.PublicKey))
		if other == noSubA {
			t.Fatal("flipS changed nothing")
		}
		if got, want := verify(other).Key(), verify(noSubA).Key(); got != want {
			t.Fatalf("(r, n-s) gave key %q, (r, s) %q", got, want)
		}
	})
	t.Run("tokens of one subject share a key", func(t *testing.T) {
		if a, b := verify(alice1).Key(), verify(alice2).Key(); a != b {
			t.Fatalf("%q and %q", a, b)
		}
	})
	t.Run("issuers keep subjects apart", func(t *testing.T) {
		keys := map[string]bool{verify(alice1).Key(): true, verify(aliceIdP).Key(): true, verify(aliceOther).Key(): true}
		if len(keys) != 3 {
			t.Fatalf("keys %v; want three", keys)
		}
	})
	t.Run("no token material", func(t *testing.T) {
		for _, tok := range []string{noSubA, emptySub, alice1} {
			k := verify(tok).Key()
			for _, part := range strings.Split(tok, ".") {
				if strings.Contains(k, part) || strings.Contains(part, k) {
					t.Fatalf("key %q holds a part of the token", k)
				}
			}
		}
	})
	t.Run("names cannot collide", func(t *testing.T) {
		ps := []*Principal{
			{Source: SourceJWT, Issuer: `a":"b`, Subject: "c"},
			{Source: SourceJWT, Issuer: "a", Subject: `b":"c`},
			{Source: SourceJWT, Issuer: "a:b", Subject: "c"},
			{Source: SourceJWT, Issuer: "a", Subject: "b:c"},
			{Source: SourceJWT, Subject: "svc"},
			{Source: SourceMTLS, Subject: "svc"},
			{Source: SourceJWT, Subject: "anonymous"},
			{Source: SourceMTLS, Subject: "anonymous"},
			{Source: SourceJWT, Subject: "#" + verify(noSubA).signed},
			verify(noSubA),
		}
		seen := map[string]int{}
		for i, p := range ps {
			k := p.Key()
			if j, dup := seen[k]; dup {
				t.Fatalf("principals %d and %d share the key %q", j, i, k)
			}
			seen[k] = i
		}
		if _, dup := seen[AnonymousKey]; dup {
			t.Fatal("a named principal has the anonymous key")
		}
	})
	t.Run("certificates by their matched name", func(t *testing.T) {
		ca := newCA(t, "test CA")
		cv := &Verifier{ClientCerts: certRules}
		key := func(n names) string {
			t.Helper()
			_, leaf := ca.issue(t, n, time.Now().Add(time.Hour))
			p := cv.PrincipalFromTLS(&tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}})
			if p == nil {
				t.Fatalf("no principal for %+v", n)
			}
			return p.Key()
		}
		a := key(names{cn: "x", dns: []string{"SVC-A.corp.example"}})
		b := key(names{cn: "y", dns: []string{"svc-a.corp.example"}})
		c := key(names{cn: "cn-only"})
		if a != b || a == c {
			t.Fatalf("keys %q, %q, %q; want the first two equal and the third apart", a, b, c)
		}
		if a == (&Principal{Source: SourceJWT, Subject: "svc-a.corp.example"}).Key() {
			t.Fatal("a certificate shares the key of a token with its name as sub")
		}
	})
	t.Run("anonymous", func(t *testing.T) {
		p, prob := (&Verifier{Anonymous: []string{"demo"}}).Authenticate(httptest.NewRequest("GET", "/events", nil))
		if prob != nil || p.Key() != AnonymousKey {
			t.Fatalf("%+v, %v", p, prob)
		}
		if k := (&Principal{Anonymous: true, Source: SourceAnonymous}).Key(); k != AnonymousKey {
			t.Fatalf("a hand-made anonymous principal has key %q", k)
		}
	})
}

// TestReservedTopics checks that sseguard's own topics are reachable only
// by a grant that names them, and never for publishing.
func TestReservedTopics(t *testing.T) {
	const dash = "sseguard:dashboard"
	tests := []struct {
		name     string
		perms    Permissions
		topic    string
		sub, pub bool
	}{
		{"* does not reach a reserved topic", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, dash, false, false},
		{"a reserved prefix does not either", Permissions{Subscribe: []string{"sseguard:*"}, Publish: []string{"sseguard:*"}}, dash, false, false},
		{"nor a shorter prefix", Permissions{Subscribe: []string{"sse*"}}, dash, false, false},
		{"a grant that names it may subscribe", Permissions{Subscribe: []string{dash}}, dash, true, false},
		{"a grant that names it may not publish", Permissions{Publish: []string{dash}}, dash, false, false},
		{"another reserved topic", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, "sseguard:metrics", false, false},
		{"* still reaches other topics", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, "news", true, true},
		{"a topic that only contains the prefix", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, "x/sseguard:dashboard", true, true},
		{"the prefix is case-sensitive", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, "SSEGUARD:dashboard", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Principal{Source: SourceJWT, Subject: "ops", Permissions: tt.perms}
			if got := p.CanSubscribe(tt.topic); got != tt.sub {
				t.Errorf("CanSubscribe(%q) = %v with %+v", tt.topic, got, tt.perms)
			}
			if got := p.CanPublish(tt.topic); got != tt.pub {
				t.Errorf("CanPublish(%q) = %v with %+v", tt.topic, got, tt.perms)
			}
			anon, _ := (&Verifier{Anonymous: tt.perms.Subscribe}).Authenticate(httptest.NewRequest("GET", "/events", nil))
			if got := anon.CanSubscribe(tt.topic); got != tt.sub && len(tt.perms.Subscribe) > 0 {
				t.Errorf("anonymous with %q: CanSubscribe(%q) = %v", tt.perms.Subscribe, tt.topic, got)
			}
		})
	}
	t.Run("through a token", func(t *testing.T) {
		tok, err := Mint(key, "ops", Permissions{Subscribe: []string{"*"}, Publish: []string{"*"}}, time.Hour, testNow)
		if err != nil {
			t.Fatal(err)
		}
		p, prob := (&Verifier{Keys: hs256(key), Now: testClock}).Verify(tok)
		if prob != nil {
			t.Fatal(prob)
		}
		if p.CanSubscribe(dash) || p.CanPublish(dash) {
			t.Fatalf("a * token reaches %s", dash)
		}
	})
}
