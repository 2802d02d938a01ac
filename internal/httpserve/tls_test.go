package httpserve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for loopback tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) for a server on 127.0.0.1, or
// for a client.
func (ca *testCA) issue(t *testing.T, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadTLSErrorsNameTheKey(t *testing.T) {
	ca := newCA(t)
	cert, key := ca.issue(t, false)
	certFile, keyFile := writeFile(t, "c.pem", cert), writeFile(t, "k.pem", key)
	tests := []struct {
		name string
		f    TLSFiles
		want string // error prefix; empty: no error
	}{
		{"plain HTTP", TLSFiles{}, ""},
		{"missing key", TLSFiles{CertFile: certFile, KeyFile: filepath.Join(t.TempDir(), "none")}, "tls.cert_file, tls.key_file: "},
		{"missing CA", TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: filepath.Join(t.TempDir(), "none")}, "tls.client_ca_file: "},
		{"CA not PEM", TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: writeFile(t, "ca.pem", []byte("not pem"))}, "tls.client_ca_file: no PEM certificate"},
		{"server only", TLSFiles{CertFile: certFile, KeyFile: keyFile}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := LoadTLS(tt.f)
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q…", err, tt.want)
			case tt.want == "" && (tt.f.CertFile == "") != (tc == nil):
				t.Fatalf("config %v for %+v", tc, tt.f)
			case tc != nil && (tc.MinVersion != tls.VersionTLS12 || tc.ClientAuth != tls.NoClientCert):
				t.Fatalf("server-only config: min %x, client auth %v", tc.MinVersion, tc.ClientAuth)
			}
		})
	}
}

// TestClientCertificates serves HTTPS with a client CA, optional and then
// required, and dials with a certificate of that CA, one of another CA,
// and none.
func TestClientCertificates(t *testing.T) {
	ca, rogue := newCA(t), newCA(t)
	srvCert, srvKey := ca.issue(t, false)
	files := TLSFiles{
		CertFile:     writeFile(t, "srv.pem", srvCert),
		KeyFile:      writeFile(t, "srv-key.pem", srvKey),
		ClientCAFile: writeFile(t, "ca.pem", ca.pem),
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(c *testCA) *http.Client {
		tc := &tls.Config{RootCAs: roots}
		if c != nil {
			cp, kp := c.issue(t, true)
			pair, err := tls.X509KeyPair(cp, kp)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	}
	for _, require := range []bool{false, true} {
		files.RequireClientCert = require
		tc, err := LoadTLS(files)
		if err != nil {
			t.Fatal(err)
		}
		// The handler says whether the connection carried a verified
		// certificate.
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
				w.WriteHeader(http.StatusAccepted)
			}
		})
		s := New(h, Options{TLS: tc, Logger: slog.New(slog.DiscardHandler)})
		ln := listen(t)
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() { errc <- s.Serve(ctx, ln) }()
		url := "https://" + ln.Addr().String() + "/"
		for _, tt := range []struct {
			name string
			ca   *testCA
			want int // 0: the handshake fails
		}{
			{"own CA", ca, http.StatusAccepted},
			{"other CA", rogue, 0},
			{"none", nil, map[bool]int{false: http.StatusOK, true: 0}[require]},
		} {
			c := client(tt.ca)
			res, err := c.Get(url)
			got := 0
			if err == nil {
				got = res.StatusCode
				if res.ProtoMajor != 2 {
					t.Errorf("require %v, %s: HTTP/%d, want HTTP/2", require, tt.name, res.ProtoMajor)
				}
				res.Body.Close()
			}
			c.CloseIdleConnections()
			if got != tt.want {
				t.Errorf("require %v, %s: status %d (err %v), want %d", require, tt.name, got, err, tt.want)
			}
		}
		cancel()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}
