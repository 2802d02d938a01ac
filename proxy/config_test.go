package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/proxy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from testdata/*.yaml")

// TestGolden renders each testdata/*.yaml as the proxy sees it: the
// effective configuration after Fill, or the errors "sseguard config
// check" shows, with their lines. Run with -update after a deliberate
// change to defaults or messages, and check the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d files in testdata, want example, invalid, minimal and types", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			c, err := proxy.ParseConfig(data)
			if err != nil {
				got = "parse errors:\n" + err.Error() + "\n"
			} else {
				c.Fill()
				if err := c.Validate(); err != nil {
					got = "validation errors:\n" + config.Locate(data, err).Error() + "\n"
				} else {
					b, err := yaml.Marshal(c)
					if err != nil {
						t.Fatal(err)
					}
					got = string(b)
				}
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./proxy -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s is out of date (run go test ./proxy -run TestGolden -update after checking the diff)\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestConfigSharesServeRules checks that a section both files have is
// refused the same way in both, with the same words: origins that would
// never match, key algorithms, JWKS URLs, log settings, TLS pairs and
// request limits.
func TestConfigSharesServeRules(t *testing.T) {
	tests := []struct {
		name          string
		serve, prox   string // the section as each file writes it
		field, pfield string // the field each names
	}{
		{"upper-case origin", "cors: {allowed_origins: [https://App.Example]}", "", "cors.allowed_origins[0]", ""},
		{"origin with a query", "cors: {allowed_origins: ['https://app.example?x=1']}", "", "cors.allowed_origins[0]", ""},
		{"origin with a default port", "cors: {allowed_origins: ['https://app.example:443']}", "", "cors.allowed_origins[0]", ""},
		{"null origin", "cors: {allowed_origins: ['null']}", "", "cors.allowed_origins[0]", ""},
		{"anonymous origin not allowed", "cors: {allowed_origins: [https://a.example], anonymous_origins: [https://b.example]}", "", "cors.anonymous_origins[0]", ""},
		{"negative preflight cache", "cors: {max_age: -1s}", "", "cors.max_age", ""},
		{"unknown key algorithm", "auth: {keys: [{algorithm: none, secret_file: k}]}", "", "auth.keys[0].algorithm", ""},
		{"HMAC key with a public key", "auth: {keys: [{algorithm: HS256, public_key_file: k}]}", "", "auth.keys[0]", ""},
		{"JWKS over plain http", "auth: {jwks_url: 'http://idp.example/jwks'}", "", "auth.jwks_url", ""},
		{"empty audience", "auth: {audience: ['']}", "", "auth.audience[0]", ""},
		{"cookie name", "auth: {cookie: 'a b'}", "", "auth.cookie", ""},
		{"negative leeway", "auth: {leeway: -1s}", "", "auth.leeway", ""},
		{"profile", "profile: loose", "", "profile", ""},
		{"accept", "accept: any", "", "accept", ""},
		{"log level", "log: {level: loud}", "", "log.level", ""},
		{"log format", "log: {format: xml}", "", "log.format", ""},
		{"cert without key", "tls: {cert_file: c.pem}", "", "tls", ""},
		{"header limit", "limits: {max_header_bytes: 100}", "max_header_bytes: 100", "limits.max_header_bytes", "max_header_bytes"},
		{"body timeout", "limits: {read_body_timeout: -1s}", "read_body_timeout: -1s", "limits.read_body_timeout", "read_body_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prox, pfield := tt.prox, tt.pfield
			if prox == "" {
				prox, pfield = tt.serve, tt.field
			}
			sc, err := config.Parse([]byte(tt.serve + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			serveErr := problemOf(t, sc.Validate(), tt.field)
			pc, err := proxy.ParseConfig([]byte("upstream: http://127.0.0.1:3000\n" + prox + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			pc.Fill()
			if proxyErr := problemOf(t, pc.Validate(), pfield); proxyErr != serveErr {
				t.Errorf("serve says %s: %s\nproxy says %s: %s", tt.field, serveErr, pfield, proxyErr)
			}
		})
	}
}

// problemOf returns the problem err reports about field, failing the test
// when there is none or when err holds anything but *config.FieldError.
func problemOf(t *testing.T, err error, field string) string {
	t.Helper()
	var found string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%T %v is not a *config.FieldError", e, e)
		}
		if fe.Field == field {
			found = fe.Problem
		}
	}
	if found == "" {
		t.Fatalf("no error on %s in %v", field, err)
	}
	return found
}

func TestExampleConfig(t *testing.T) {
	c, err := proxy.LoadConfig("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 3 || c.Routes[0].Upstream != "http://127.0.0.1:3000" || c.Routes[1].Fallback != "/api/poll" ||
		c.Heartbeat.D() != 15*time.Second || c.Auth.SubjectHeader != "X-User" || c.DriftLogInterval.D() != time.Minute {
		t.Errorf("parsed %+v", c)
	}
	// docs/proxy.md shows this file as it is.
	doc, err := os.ReadFile("../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile("testdata/example.yaml")
	if !strings.Contains(string(doc), "```yaml\n"+string(raw)+"```") {
		t.Error("docs/proxy.md does not show testdata/example.yaml verbatim in a yaml block")
	}
}

// TestConfigClientCertificates checks that a client CA is accepted with
// client_auth require, the one mode in which the proxy's certificates do
// something.
func TestConfigClientCertificates(t *testing.T) {
	c, err := proxy.ParseConfig([]byte("upstream: http://127.0.0.1:3000\ntls: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem, client_auth: require}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := &proxy.Config{Upstream: "http://127.0.0.1:3000"}
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].Prefix != "/" || c.Routes[0].Kind != proxy.KindAuto || c.Routes[0].Auth != proxy.AuthNone ||
		c.Listen != proxy.DefaultListen || c.HeaderTimeout.D() != proxy.DefaultHeaderTimeout || c.RetryAfter.D() != proxy.DefaultRetryAfter {
		t.Errorf("defaults %+v", c)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "upstream: http://a\nheartbaet: 1s\n", []string{"heartbaet"}},
		{"no upstream", "routes: [{prefix: /x}]\n", []string{"routes[0].upstream"}},
		{"bad upstream", "upstream: ftp://a\n", []string{"upstream: \"ftp://a\": want an absolute http"}},
		{"bad kind and auth", "upstream: http://a\nroutes: [{prefix: /x, kind: sse, auth: basic}]\n", []string{"routes[0].kind", "routes[0].auth"}},
		{"jwt without keys", "upstream: http://a\nroutes: [{prefix: /x, auth: jwt}]\n", []string{"routes[0].auth: jwt needs auth.keys"}},
		{"topic without auth", "upstream: http://a\nroutes: [{prefix: /x, topic_param: t}]\n", []string{"routes[0].topic_param"}},
		{"prefix", "upstream: http://a\nroutes: [{prefix: x}, {prefix: /y}, {prefix: /y}]\n", []string{"routes[0].prefix", "routes[2].prefix"}},
		{"allowlists", "upstream: http://a\nresponse_headers: [Connection, Access-Control-Allow-Origin]\nrequest_headers: [X-Sseguard-Subject, Accept-Encoding]\n",
			[]string{"response_headers[0]", "response_headers[1]", "request_headers[0]", "request_headers[1]"}},
		{"origins", "upstream: http://a\ncors: {allowed_origins: ['*', 'https://ok.example', 'null']}\n", []string{"cors.allowed_origins[0]", "cors.allowed_origins[2]"}},
		{"durations", "upstream: http://a\nheader_timeout: -1s\nprofile: loose\n", []string{"header_timeout", "profile"}},
		{"tls and log", "upstream: http://a\ntls: {cert_file: c.pem, client_ca_file: ca.pem}\nlog: {format: xml, level: loud}\n",
			[]string{"tls: cert_file and key_file", "tls.client_auth: the proxy uses client certificates only to admit connections", "log.format", "log.level"}},
		{"client CA without a certificate", "upstream: http://a\ntls: {client_ca_file: ca.pem, client_auth: require}\n", []string{"tls.client_ca_file: needs tls.cert_file and tls.key_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := proxy.ParseConfig([]byte(tc.yaml))
			if err == nil {
				c.Fill()
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *config.FieldError
				if !errors.As(e, &fe) {
					t.Errorf("%T %v is not a *config.FieldError", e, e)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

// FuzzParseConfig checks that no input makes ParseConfig, Fill or
// Validate panic, and that every decoding failure names a line.
func FuzzParseConfig(f *testing.F) {
	for _, file := range []string{"testdata/example.yaml", "testdata/types.yaml", "testdata/invalid.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := proxy.ParseConfig(data)
		if err != nil {
			var fe *config.FieldError
			if errors.As(err, &fe) && fe.Line == 0 {
				t.Errorf("%v: no line", fe)
			}
			return
		}
		c.Fill()
		_ = config.Locate(data, c.Validate())
	})
}

// TestClientCertificatesAdmit checks that a proxy file's client CA with
// client_auth require is obeyed, not accepted and ignored: a client
// without a certificate from the CA is refused at the handshake, one with
// it is served.
func TestClientCertificatesAdmit(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	writePEM := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	server := issue(2, x509.ExtKeyUsageServerAuth)
	serverKey, _ := x509.MarshalPKCS8PrivateKey(server.PrivateKey)
	certFile := writePEM("cert.pem", "CERTIFICATE", server.Certificate[0])
	keyFile := writePEM("key.pem", "PRIVATE KEY", serverKey)
	caFile := writePEM("ca.pem", "CERTIFICATE", caDER)

	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	})
	cfg, err := proxy.ParseConfig([]byte("upstream: " + up.URL + "\ntls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile +
		"\n  client_ca_file: " + caFile + "\n  client_auth: require\n"))
	if err != nil {
		t.Fatal(err)
	}
	tp := startProxy(t, cfg)

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	get := func(certs []tls.Certificate) error {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
		defer client.CloseIdleConnections()
		res, err := client.Get("https://" + tp.addr + "/x")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	}
	if err := get(nil); err == nil {
		t.Error("a client without a certificate was served")
	}
	if err := get([]tls.Certificate{issue(3, x509.ExtKeyUsageClientAuth)}); err != nil {
		t.Errorf("a client with a certificate from the CA: %v", err)
	}
}
