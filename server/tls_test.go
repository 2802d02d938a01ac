package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/internal/httpserve/certtest"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	*certtest.CA
	pem []byte
}

func newTestCA(t *testing.T) *testCA {
	ca := certtest.NewCA(t)
	return &testCA{CA: ca, pem: ca.PEM}
}

// issue returns a PEM certificate and key for names; client selects the
// client-auth usage.
func (ca *testCA) issue(t *testing.T, cn string, uris []string, dns []string, ips []net.IP, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.Issue(t, certtest.Leaf{CN: cn, URIs: uris, DNS: dns, IPs: ips, Client: client})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMTLSPrincipals serves HTTPS with client certificates configured the
// way an operator would, and checks that a certificate's SAN URI grants
// what its rule says, over HTTP/2.
func TestMTLSPrincipals(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "hub", nil, nil, []net.IP{net.ParseIP("127.0.0.1")}, false)
	feedCert, feedKey := ca.issue(t, "feed", []string{"spiffe://test/svc/feed"}, nil, nil, true)
	otherCert, otherKey := ca.issue(t, "nobody", nil, []string{"nobody.test"}, nil, true)
	rogue := newTestCA(t)
	rogueCert, rogueKey := rogue.issue(t, "feed", []string{"spiffe://test/svc/feed"}, nil, nil, true)

	cfg := config.Default()
	cfg.Stream.Heartbeat = config.Duration(time.Hour)
	cfg.TLS.CertFile = writeFile(t, dir, "srv.pem", srvCert)
	cfg.TLS.KeyFile = writeFile(t, dir, "srv-key.pem", srvKey)
	cfg.TLS.ClientCAFile = writeFile(t, dir, "ca.pem", ca.pem)
	cfg.Auth.ClientCerts = []config.CertRule{{Principal: "spiffe://test/svc/feed", Subscribe: []string{"prices"}, Publish: []string{"prices"}}}
	cfg.Auth.AnonymousSubscribe = &[]string{}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := TLSConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, stop, err := NewVerifier(context.Background(), cfg, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := hub.New(hub.Options{Store: memory.New(store.Retention{})})
	srv := New(cfg, h, v, slog.New(slog.DiscardHandler))
	srv.TLS = tc
	addr, _ := runLoopback(t, srv)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(certPEM, keyPEM []byte) *http.Client {
		tcfg := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			tcfg.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	}
	base := "https://" + addr
	publish := func(c *http.Client) (*http.Response, error) {
		req, _ := http.NewRequest("POST", base+"/api/publish", strings.NewReader(`{"topic":"prices","data":"42"}`))
		req.Header.Set("Content-Type", "application/json")
		return c.Do(req)
	}

	res, err := publish(client(feedCert, feedKey))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 || res.ProtoMajor != 2 {
		t.Fatalf("certificate with a rule: %d over HTTP/%d", res.StatusCode, res.ProtoMajor)
	}
	for name, c := range map[string]*http.Client{"no rule": client(otherCert, otherKey), "no certificate": client(nil, nil)} {
		res, err := publish(c)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 401 {
			t.Fatalf("%s: status %d, want 401", name, res.StatusCode)
		}
	}
	if res, err := publish(client(rogueCert, rogueKey)); err == nil {
		res.Body.Close()
		t.Fatalf("a certificate from another CA got through the handshake: %d", res.StatusCode)
	}
}

// TestQueryTokenNeverLogged turns the query token on, sends it with good
// and failing requests, and checks that no log line carries it.
func TestQueryTokenNeverLogged(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.QueryParam = "access_token"
	cfg.Stream.Heartbeat = config.Duration(time.Hour)
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, stop, err := NewVerifier(context.Background(), cfg, testKey, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := hub.New(hub.Options{Store: memory.New(store.Retention{}), Logger: log})
	srv := New(cfg, h, v, log)
	addr, stopServer := runLoopback(t, srv)

	tok := token(t, allPerms, time.Hour)
	base := "http://" + addr
	for _, q := range []string{
		"/api/poll?topic=t&after=&access_token=" + tok,
		"/api/poll?topic=t&after=bogus&access_token=" + tok,
		"/api/poll?topic=a*b&access_token=" + tok,
		"/events?topic=t&access_token=" + tok + "x",
		"/nope?access_token=" + tok,
	} {
		req, _ := http.NewRequest("GET", base+q, nil)
		req.Header.Set("Origin", "https://evil.test")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}
	if err := stopServer(); err != nil { // the log is complete
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("nothing was logged: the check would prove nothing")
	}
	sig := tok[strings.LastIndexByte(tok, '.')+1:]
	if strings.Contains(logs.String(), sig) || strings.Contains(logs.String(), tok[:30]) {
		t.Fatalf("token material in the logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
