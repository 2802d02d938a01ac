package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
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
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.topic); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.topic, got, tt.want)
		}
	}
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v := &Verifier{Key: key, Now: func() time.Time { return now }}
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
		{"bearer", &Verifier{Key: key}, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }, false, "bob"},
		{"bearer lower case", &Verifier{Key: key}, func(r *http.Request) { r.Header.Set("Authorization", "bearer "+tok) }, false, "bob"},
		{"cookie", &Verifier{Key: key}, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: DefaultCookie, Value: tok}) }, false, "bob"},
		{"query off by default", &Verifier{Key: key}, func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok }, true, ""},
		{"query when enabled", &Verifier{Key: key, QueryParam: "access_token"}, func(r *http.Request) { r.URL.RawQuery = "access_token=" + tok }, false, "bob"},
		{"nothing", &Verifier{Key: key, Anonymous: []string{"demo"}}, func(*http.Request) {}, true, ""},
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
	short := filepath.Join(t.TempDir(), "short.key")
	_ = os.WriteFile(short, []byte("tiny"), 0o600)
	if _, err := LoadOrCreateSecret(short); err == nil {
		t.Fatal("a 4-byte secret was accepted")
	}
	if _, err := LoadOrCreateSecret(t.TempDir()); err == nil || errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading a directory: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	v := &Verifier{Key: key}
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
	v := &Verifier{Key: key, Now: func() time.Time { return now }}
	tok, _ := Mint(key, "alice", Permissions{}, time.Minute, now)
	if _, prob := v.Verify(tok); prob != nil {
		t.Fatal(prob)
	}
	now = now.Add(2 * time.Minute) // past exp and the 30 s leeway
	if _, prob := v.Verify(tok); prob == nil || prob.Code != policy.CodeTokenExpired {
		t.Fatalf("a cached token outlived its expiry: %v", prob)
	}
}
