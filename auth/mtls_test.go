package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// clientCert issues a client certificate with the given names.
type names struct {
	cn   string
	dns  []string
	uris []string
}

func (ca *testCA) issue(t *testing.T, n names, notAfter time.Time) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: n.cn},
		DNSNames:     n.dns,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range n.uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

var certRules = []CertRule{
	{Principal: "cn-only", Permissions: Permissions{Subscribe: []string{"cn"}}},
	{Principal: "svc-a.corp.example", Permissions: Permissions{Subscribe: []string{"dns"}}},
	{Principal: "spiffe://corp/svc/a", Permissions: Permissions{Subscribe: []string{"uri"}, Origins: []string{"https://app.example", "*"}}},
	{Principal: "Other-CN", Permissions: Permissions{Publish: []string{"other"}}},
}

func TestPrincipalFromTLS(t *testing.T) {
	ca := newCA(t, "test CA")
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	tests := []struct {
		name    string
		n       names
		subject string // "" means no principal
		topic   string
	}{
		{"SAN URI over DNS and CN", names{cn: "cn-only", dns: []string{"svc-a.corp.example"}, uris: []string{"spiffe://corp/svc/a"}}, "spiffe://corp/svc/a", "uri"},
		{"DNS over CN", names{cn: "cn-only", dns: []string{"x.example", "svc-a.corp.example"}, uris: []string{"spiffe://corp/svc/unknown"}}, "svc-a.corp.example", "dns"},
		{"DNS matches without case", names{dns: []string{"SVC-A.corp.example"}}, "svc-a.corp.example", "dns"},
		{"CN last", names{cn: "cn-only", dns: []string{"x.example"}}, "cn-only", "cn"},
		{"CN is case sensitive", names{cn: "other-cn"}, "", ""},
		{"no rule matches", names{cn: "stranger", dns: []string{"stranger.example"}, uris: []string{"spiffe://corp/svc/b"}}, "", ""},
		{"a URI rule does not match a prefix", names{uris: []string{"spiffe://corp/svc/a/b"}}, "", ""},
	}
	v := &Verifier{ClientCerts: certRules}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, leaf := ca.issue(t, tt.n, notAfter)
			p := v.PrincipalFromTLS(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}, VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}})
			if tt.subject == "" {
				if p != nil {
					t.Fatalf("got %+v, want none", p)
				}
				return
			}
			if p == nil {
				t.Fatal("no principal")
			}
			if p.Subject != tt.subject || p.Source != SourceMTLS || p.Anonymous || !p.CanSubscribe(tt.topic) || !p.Expires.Equal(notAfter) {
				t.Fatalf("principal %+v", p)
			}
		})
	}

	_, leaf := ca.issue(t, names{uris: []string{"spiffe://corp/svc/a"}}, notAfter)
	t.Run("origins drop *", func(t *testing.T) {
		p := v.PrincipalFromTLS(&tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}})
		if p == nil || !slices.Equal(p.Origins, []string{"https://app.example"}) {
			t.Fatalf("principal %+v", p)
		}
	})
	t.Run("unverified certificate", func(t *testing.T) {
		if p := v.PrincipalFromTLS(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}); p != nil {
			t.Fatalf("an unverified certificate gave %+v", p)
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		if p := v.PrincipalFromTLS(nil); p != nil {
			t.Fatal(p)
		}
	})
	t.Run("expired since the handshake", func(t *testing.T) {
		late := &Verifier{ClientCerts: certRules, Now: func() time.Time { return notAfter.Add(time.Second) }}
		if p := late.PrincipalFromTLS(&tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf, ca.cert}}}); p != nil {
			t.Fatalf("an expired certificate gave %+v", p)
		}
	})
}

// TestMTLSOverTLS runs real handshakes against a loopback TLS server that
// verifies client certificates against its own CA.
func TestMTLSOverTLS(t *testing.T) {
	ca := newCA(t, "sseguard test CA")
	rogue := newCA(t, "sseguard test CA") // same name, other key
	hs := newSigner(t, "HS256", "")
	v := &Verifier{Keys: []Key{hs.key}, ClientCerts: certRules}

	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		p, prob := v.Authenticate(r)
		if prob != nil {
			http.Error(w, prob.Code, prob.Status)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"source": p.Source, "subject": p.Subject, "expires": p.Expires.Unix()})
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the rogue handshake is expected to fail
	srv.StartTLS()
	t.Cleanup(srv.Close)

	notAfter := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	uriCert, _ := ca.issue(t, names{cn: "cn-only", dns: []string{"svc-a.corp.example"}, uris: []string{"spiffe://corp/svc/a"}}, notAfter)
	cnCert, _ := ca.issue(t, names{cn: "cn-only"}, notAfter)
	unknownCert, _ := ca.issue(t, names{cn: "stranger"}, notAfter)
	rogueCert, _ := rogue.issue(t, names{uris: []string{"spiffe://corp/svc/a"}}, notAfter)
	tok := hs.sign(t, claims("exp", time.Now().Add(time.Hour).Unix(), "iat", time.Now().Unix()))

	tests := []struct {
		name    string
		cert    *tls.Certificate
		bearer  string
		source  string // "" means the request must fail in the handshake
		subject string
	}{
		{"SAN URI certificate", &uriCert, "", SourceMTLS, "spiffe://corp/svc/a"},
		{"CN certificate", &cnCert, "", SourceMTLS, "cn-only"},
		{"certificate without a rule", &unknownCert, "", SourceAnonymous, ""},
		{"no certificate", nil, "", SourceAnonymous, ""},
		{"a token wins over the certificate", &uriCert, tok, SourceJWT, "alice"},
		{"a certificate from another CA", &rogueCert, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := srv.Client().Transport.(*http.Transport).Clone()
			if tt.cert != nil {
				cert := tt.cert
				// Send the certificate even when the server's CA list does
				// not name its issuer, as an attacker would.
				tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL, nil)
			if tt.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tt.bearer)
			}
			before := hits.Load()
			res, err := (&http.Client{Transport: tr}).Do(req)
			if tt.source == "" {
				if err == nil {
					res.Body.Close()
					t.Fatalf("status %d: the handshake succeeded", res.StatusCode)
				}
				if hits.Load() != before {
					t.Fatal("the request reached the handler")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var got struct {
				Source, Subject string
				Expires         int64
			}
			if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
				t.Fatalf("status %d: %v", res.StatusCode, err)
			}
			if got.Source != tt.source || got.Subject != tt.subject {
				t.Fatalf("got %+v", got)
			}
			if tt.source == SourceMTLS && got.Expires != notAfter.Unix() {
				t.Fatalf("expires %d, want the certificate's NotAfter %d", got.Expires, notAfter.Unix())
			}
		})
	}
}
