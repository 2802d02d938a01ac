package httpserve

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/internal/httpserve/certtest"
)

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

func TestLoadTLSErrorsNameTheKey(t *testing.T) {
	ca := certtest.NewCA(t)
	cert, key := ca.Issue(t, certtest.Leaf{CN: "hub", IPs: loopback})
	certFile, keyFile := certtest.WriteFile(t, "c.pem", cert), certtest.WriteFile(t, "k.pem", key)
	tests := []struct {
		name string
		f    TLSFiles
		want string // error prefix; empty: no error
	}{
		{"plain HTTP", TLSFiles{}, ""},
		{"missing key", TLSFiles{CertFile: certFile, KeyFile: filepath.Join(t.TempDir(), "none")}, "tls.cert_file, tls.key_file: "},
		{"missing CA", TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: filepath.Join(t.TempDir(), "none")}, "tls.client_ca_file: "},
		{"CA not PEM", TLSFiles{CertFile: certFile, KeyFile: keyFile, ClientCAFile: certtest.WriteFile(t, "ca.pem", []byte("not pem"))}, "tls.client_ca_file: no PEM certificate"},
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
	ca, rogue := certtest.NewCA(t), certtest.NewCA(t)
	srvCert, srvKey := ca.Issue(t, certtest.Leaf{CN: "hub", IPs: loopback})
	files := TLSFiles{
		CertFile:     certtest.WriteFile(t, "srv.pem", srvCert),
		KeyFile:      certtest.WriteFile(t, "srv-key.pem", srvKey),
		ClientCAFile: certtest.WriteFile(t, "ca.pem", ca.PEM),
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
			ca   *certtest.CA
			want int // 0: the handshake fails
		}{
			{"own CA", ca, http.StatusAccepted},
			{"other CA", rogue, 0},
			{"none", nil, map[bool]int{false: http.StatusOK, true: 0}[require]},
		} {
			c := ca.Client(t, tt.ca)
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
