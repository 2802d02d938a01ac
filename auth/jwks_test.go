package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"go.uber.org/goleak"

	"github.com/sseguard/sseguard/policy"
)

var quiet = slog.New(slog.DiscardHandler)

// jwksServer serves a JWK Set that tests swap at will, on loopback.
type jwksServer struct {
	*httptest.Server
	body    atomic.Pointer[[]byte]
	status  atomic.Int32
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...jwkset.JWKMarshal) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.status.Store(http.StatusOK)
	s.serve(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(int(s.status.Load()))
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(t *testing.T, keys ...jwkset.JWKMarshal) {
	t.Helper()
	s.body.Store(ptr(jwksJSON(t, keys...)))
}

func ptr[T any](v T) *T { return &v }

func jwksJSON(t *testing.T, keys ...jwkset.JWKMarshal) []byte {
	t.Helper()
	if keys == nil {
		keys = []jwkset.JWKMarshal{}
	}
	b, err := json.Marshal(jwkset.JWKSMarshal{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwk is the public JWK of s, with its kid and alg.
func jwk(t *testing.T, s signer) jwkset.JWKMarshal {
	t.Helper()
	if s.key.Secret != nil {
		return jwkset.JWKMarshal{KTY: jwkset.KtyOct, ALG: jwkset.ALG(s.key.Algorithm), KID: s.key.ID, K: base64.RawURLEncoding.EncodeToString(s.key.Secret)}
	}
	j, err := jwkset.NewJWKFromKey(s.key.Public, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{ALG: jwkset.ALG(s.key.Algorithm), KID: s.key.ID}})
	if err != nil {
		t.Fatal(err)
	}
	return j.Marshal()
}

func startJWKS(t *testing.T, j *JWKS) {
	t.Helper()
	if j.Logger == nil {
		j.Logger = quiet
	}
	if err := j.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Stop)
}

func TestJWKSRotation(t *testing.T) {
	a, b := newSigner(t, "ES256", "A"), newSigner(t, "EdDSA", "B")
	srv := newJWKSServer(t, jwk(t, a))
	j := &JWKS{URL: srv.URL, MinRefetch: time.Nanosecond}
	startJWKS(t, j)
	v := &Verifier{JWKS: j, Now: testClock}
	tokA, tokB := a.sign(t, claims("sub", "a")), b.sign(t, claims("sub", "b"))

	accept := func(tok, sub string) {
		t.Helper()
		p, prob := v.Verify(tok)
		if prob != nil || p.Subject != sub {
			t.Fatalf("%s refused: %v", sub, prob)
		}
	}
	refuse := func(tok string) {
		t.Helper()
		p, prob := v.Verify(tok)
		checkRefused(t, p, prob, tok, policy.CodeTokenInvalid, "key is not known")
	}

	accept(tokA, "a")
	refuse(tokB) // B is not published yet; the refetch finds nothing new

	srv.serve(t, jwk(t, a), jwk(t, b))
	accept(tokB, "b") // the unknown kid triggers a refetch
	accept(tokA, "a")

	srv.serve(t, jwk(t, b))
	accept(tokA, "a") // cached and still in the key set until the next refresh
	if err := j.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	refuse(tokA) // A left the set: the verified-token cache was cleared too
	accept(tokB, "b")
}

func TestJWKSRefreshLoop(t *testing.T) {
	a, b := newSigner(t, "ES256", "A"), newSigner(t, "ES384", "B")
	srv := newJWKSServer(t, jwk(t, a))
	j := &JWKS{URL: srv.URL, Refresh: 10 * time.Millisecond, MinRefetch: time.Hour}
	startJWKS(t, j)
	srv.serve(t, jwk(t, b))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, hasA := j.Lookup("A")
		_, hasB := j.Lookup("B")
		if !hasA && hasB {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refresh loop did not pick up the new key set (A %v, B %v)", hasA, hasB)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A failing refresh keeps the last good set.
	srv.status.Store(http.StatusInternalServerError)
	n := srv.fetches.Load()
	for srv.fetches.Load() < n+2 {
		if time.Now().After(deadline) {
			t.Fatal("no refresh after the failure")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, ok := j.Lookup("B"); !ok {
		t.Fatal("a failed refresh dropped the key set")
	}
}

func TestJWKSStopEndsTheRefreshGoroutine(t *testing.T) {
	a := newSigner(t, "ES256", "A")
	srv := newJWKSServer(t, jwk(t, a))
	ignore := goleak.IgnoreCurrent()
	j := &JWKS{URL: srv.URL, Refresh: time.Millisecond, Logger: quiet}
	if err := j.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := j.Start(t.Context()); err == nil {
		t.Fatal("a second Start succeeded")
	}
	j.Stop()
	j.Stop() // idempotent
	srv.Client().Transport.(*http.Transport).CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	goleak.VerifyNone(t, ignore, goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"), goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"), goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))

	// Ending the context stops it as well; Stop then returns at once.
	ctx, cancel := context.WithCancel(t.Context())
	j2 := &JWKS{URL: srv.URL, Refresh: time.Millisecond, Logger: quiet}
	if err := j2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	j2.Stop()
	if _, ok := j2.Lookup("A"); !ok {
		t.Fatal("a stopped key set forgot its keys")
	}
}

func TestJWKSKeySelection(t *testing.T) {
	es := newSigner(t, "ES256", "es")
	rs := newSigner(t, "RS256", "rs")
	hs := newSigner(t, "HS256", "hs")
	noAlg := newSigner(t, "ES256", "noalg")
	enc := newSigner(t, "ES256", "enc")
	mislabelled := newSigner(t, "ES256", "mislabelled")
	other := newSigner(t, "ES256", "other")

	noAlgJWK := jwk(t, noAlg)
	noAlgJWK.ALG = ""
	encJWK := jwk(t, enc)
	encJWK.USE = jwkset.UseEnc
	mislabelledJWK := jwk(t, mislabelled)
	mislabelledJWK.ALG = "ES384" // a P-256 key claiming ES384
	otherJWK := jwk(t, other)
	otherJWK.KID = "someone-else" // the key behind kid "other" is served under another kid
	srv := newJWKSServer(t, jwk(t, es), jwk(t, rs), jwk(t, hs), noAlgJWK, encJWK, mislabelledJWK, otherJWK)

	j := &JWKS{URL: srv.URL, MinRefetch: time.Hour}
	startJWKS(t, j)
	v := &Verifier{JWKS: j, Now: testClock}
	tests := []struct {
		name   string
		tok    string
		detail string // "" means accepted
	}{
		{"ES256 key", es.sign(t, claims()), ""},
		{"RS256 key", rs.sign(t, claims()), ""},
		{"PS256 token for the RS256 key", signWith(t, "PS256", "rs", rsaPriv(), claims()), "algorithm"},
		{"a key served for a different kid", other.sign(t, claims()), "key is not known"},
		{"the other key under the served kid", signWith(t, "ES256", "someone-else", es.priv, claims()), "signature"},
		{"a key without alg is not used", noAlg.sign(t, claims()), "key is not known"},
		{"an HS key is not used", hs.sign(t, claims()), "algorithm"},
		{"an HS token signed with the RSA JWK's n", signWith(t, "HS256", "rs", []byte(jwk(t, rs).N), claims()), "algorithm"},
		{"an encryption key is not used", enc.sign(t, claims()), "key is not known"},
		{"a P-256 key labelled ES384 is not used", signWith(t, "ES384", "mislabelled", mustECDSA(t, "ES384"), claims()), "key is not known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, prob := v.Verify(tt.tok)
			if tt.detail == "" {
				if prob != nil {
					t.Fatal(prob)
				}
				return
			}
			checkRefused(t, p, prob, tt.tok, policy.CodeTokenInvalid, tt.detail)
		})
	}
	for _, kid := range []string{"hs", "noalg", "enc", "mislabelled", "other"} {
		if k, ok := j.Lookup(kid); ok {
			t.Errorf("kid %q was loaded: %+v", kid, k)
		}
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches; unknown kids must not refetch more often than MinRefetch", n)
	}

	t.Run("Algorithms narrows the set", func(t *testing.T) {
		j := &JWKS{URL: srv.URL, Algorithms: []string{"RS256"}}
		startJWKS(t, j)
		if _, ok := j.Lookup("es"); ok {
			t.Fatal("an ES256 key was loaded though only RS256 is allowed")
		}
		if _, ok := j.Lookup("rs"); !ok {
			t.Fatal("the RS256 key is missing")
		}
	})
}

func TestJWKSKidlessKey(t *testing.T) {
	s := newSigner(t, "EdDSA", "")
	srv := newJWKSServer(t, jwk(t, s))
	j := &JWKS{URL: srv.URL}
	startJWKS(t, j)
	v := &Verifier{JWKS: j, Now: testClock}
	if _, prob := v.Verify(s.sign(t, claims())); prob != nil {
		t.Fatal(prob)
	}
}

func TestJWKSFile(t *testing.T) {
	a, b := newSigner(t, "ES256", "A"), newSigner(t, "EdDSA", "B")
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwksJSON(t, jwk(t, a)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, url := range []string{path, "file://" + path} {
		t.Run(url[:4], func(t *testing.T) {
			if err := os.WriteFile(path, jwksJSON(t, jwk(t, a)), 0o600); err != nil {
				t.Fatal(err)
			}
			j := &JWKS{URL: url, MinRefetch: time.Nanosecond}
			startJWKS(t, j)
			v := &Verifier{JWKS: j, Now: testClock}
			if _, prob := v.Verify(a.sign(t, claims())); prob != nil {
				t.Fatal(prob)
			}
			if err := os.WriteFile(path, jwksJSON(t, jwk(t, b)), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, prob := v.Verify(b.sign(t, claims())); prob != nil {
				t.Fatalf("the rewritten file was not reread: %v", prob)
			}
		})
	}
}

func TestJWKSStartErrors(t *testing.T) {
	a := newSigner(t, "ES256", "A")
	hs := newSigner(t, "HS256", "H")
	good := newJWKSServer(t, jwk(t, a))
	onlyHS := newJWKSServer(t, jwk(t, hs))
	failing := newJWKSServer(t, jwk(t, a))
	failing.status.Store(http.StatusNotFound)
	big := newJWKSServer(t)
	big.body.Store(ptr([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", 2<<20) + `"}`)))
	notJSON := newJWKSServer(t)
	notJSON.body.Store(ptr([]byte("<html>")))
	dir := t.TempDir()

	tests := []struct {
		name string
		j    *JWKS
		want string
	}{
		{"no URL", &JWKS{}, "JWKS.URL"},
		{"unknown scheme", &JWKS{URL: "ftp://example/jwks"}, "scheme"},
		{"file URL with a host", &JWKS{URL: "file://host/etc/jwks"}, "host"},
		{"HS256 allowed", &JWKS{URL: good.URL, Algorithms: []string{"HS256"}}, "JWKS.Algorithms"},
		{"none allowed", &JWKS{URL: good.URL, Algorithms: []string{"none"}}, "JWKS.Algorithms"},
		{"missing file", &JWKS{URL: filepath.Join(dir, "missing.json")}, "no such file"},
		{"HTTP 404", &JWKS{URL: failing.URL}, "404"},
		{"too large", &JWKS{URL: big.URL}, "larger than"},
		{"not JSON", &JWKS{URL: notJSON.URL}, "malformed"},
		{"no usable keys", &JWKS{URL: onlyHS.URL}, "no usable key"},
		{"nothing listening", &JWKS{URL: "http://127.0.0.1:1/jwks"}, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.j
			j.Logger = quiet
			err := j.Start(t.Context())
			if err == nil {
				j.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v; want it to mention %q", err, tt.want)
			}
			j.Stop() // harmless after a failed Start
		})
	}
}

func TestJWKSRedactsURL(t *testing.T) {
	j := &JWKS{URL: "http://user:hunter2@127.0.0.1:1/jwks", Logger: quiet}
	err := j.Start(t.Context())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err %v", err)
	}
}

// loopbackOnly is a transport that dials loopback addresses only and
// records every other address it was asked for, so that a test of a
// refused remote URL sends nothing off the machine even when the check
// under test is broken.
type loopbackOnly struct {
	mu     sync.Mutex
	remote []string
}

func (l *loopbackOnly) client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if !loopbackHost(host) {
				l.mu.Lock()
				l.remote = append(l.remote, addr)
				l.mu.Unlock()
				return nil, errors.New("test transport: no dialing off loopback")
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
}

func (l *loopbackOnly) dialed() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.remote)
}

// TestJWKSPlainHTTPOnlyOnLoopback is finding M4 in package auth: a JWKS
// over plain http to another host is refused at Start, before any fetch,
// and so is a redirect that leaves https for such a host.
func TestJWKSPlainHTTPOnlyOnLoopback(t *testing.T) {
	a := newSigner(t, "ES256", "A")
	good := newJWKSServer(t, jwk(t, a))
	goodURL, _ := url.Parse(good.URL)
	redirect := func(to string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, to, http.StatusFound)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name string
		url  string
		want string // "" means Start succeeds
	}{
		{"remote host", "http://idp.example/jwks.json", "plain http"},
		{"remote host with a password", "http://u:hunter2@idp.example/jwks.json", "plain http"},
		{"private address", "http://10.1.2.3:8080/jwks", "plain http"},
		{"all interfaces", "http://0.0.0.0:" + goodURL.Port() + "/", "plain http"},
		{"a name that starts like a loopback address", "http://127.0.0.1.nip.io/jwks", "plain http"},
		{"upper case scheme", "HTTP://idp.example/jwks", "plain http"},
		{"no host", "http:///jwks", "no host"},
		{"redirect to a remote http host", redirect("http://idp.example/jwks.json"), "redirect to http://idp.example refused"},
		{"127.0.0.1", good.URL, ""},
		{"localhost", "http://localhost:" + goodURL.Port() + "/", ""},
		{"redirect to loopback http", redirect(good.URL), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr loopbackOnly
			j := &JWKS{URL: tt.url, Client: tr.client(), Logger: quiet}
			err := j.Start(t.Context())
			defer j.Stop()
			if d := tr.dialed(); len(d) > 0 {
				t.Errorf("dialed %q", d)
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("err %v; want one that says %q", err, tt.want)
			}
		})
	}
}

func TestCheckJWKSURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://idp.example/.well-known/jwks.json", true},
		{"https://10.0.0.1/jwks", true},
		{"http://127.0.0.1:8080/jwks", true},
		{"http://127.200.0.9/jwks", true},
		{"http://[::1]:8080/jwks", true},
		{"http://[::ffff:127.0.0.1]/jwks", true},
		{"http://localhost/jwks", true},
		{"http://LocalHost:1/jwks", true},
		{"/etc/sseguard/jwks.json", true},
		{"jwks.json", true},
		{"file:///etc/sseguard/jwks.json", true},
		{"http://idp.example/jwks", false},
		{"http://192.168.1.1/jwks", false},
		{"http://[::]/jwks", false},
		{"http://localhost.example/jwks", false},
		{"http://127.0.0.1@idp.example/jwks", false},
		{"https://", false},
		{"ftp://idp.example/jwks", false},
		{"file://host/etc/jwks", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := CheckJWKSURL(tt.url); (err == nil) != tt.ok {
			t.Errorf("CheckJWKSURL(%q) = %v; want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestJWKSCacheHonoursExpiry(t *testing.T) {
	a := newSigner(t, "ES256", "A")
	srv := newJWKSServer(t, jwk(t, a))
	j := &JWKS{URL: srv.URL}
	startJWKS(t, j)
	now := testNow
	v := &Verifier{JWKS: j, Now: func() time.Time { return now }}
	tok := a.sign(t, claims("exp", testNow.Add(time.Minute).Unix()))
	if _, prob := v.Verify(tok); prob != nil {
		t.Fatal(prob)
	}
	now = now.Add(2 * time.Minute)
	if _, prob := v.Verify(tok); prob == nil || prob.Code != policy.CodeTokenExpired {
		t.Fatalf("a cached token outlived its expiry: %v", prob)
	}
}

// BenchmarkVerifyUncached measures one signature check and claim
// validation per algorithm: what a token costs before the cache has it.
func BenchmarkVerifyUncached(b *testing.B) {
	for _, alg := range []string{"HS256", "ES256", "EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			s := newSigner(b, alg, "k")
			tok := s.sign(b, claims())
			b.ReportAllocs()
			for b.Loop() {
				v := &Verifier{Keys: []Key{s.key}, Now: testClock}
				if _, prob := v.Verify(tok); prob != nil {
					b.Fatal(prob)
				}
			}
		})
	}
}
