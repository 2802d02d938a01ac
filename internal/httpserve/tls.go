package httpserve

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSFiles name the files of an HTTPS listener, as the tls section of the
// hub's and the proxy's configuration files does.
type TLSFiles struct {
	// CertFile and KeyFile hold the server's certificate chain and key
	// (PEM). Both empty means plain HTTP.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the CAs (PEM) whose client
	// certificates are verified.
	ClientCAFile string
	// RequireClientCert refuses a handshake without a verified client
	// certificate; otherwise one is verified when sent. Without
	// ClientCAFile it has no effect.
	RequireClientCert bool
}

// LoadTLS returns the HTTPS configuration of f (TLS 1.2 or later, HTTP/2
// offered), or nil when f names no certificate file. Errors name the
// configuration key that failed.
func LoadTLS(f TLSFiles) (*tls.Config, error) {
	if f.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file, tls.key_file: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if f.ClientCAFile == "" {
		return tc, nil
	}
	pem, err := os.ReadFile(f.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls.client_ca_file: no PEM certificate in %s", f.ClientCAFile)
	}
	tc.ClientCAs = pool
	tc.ClientAuth = tls.VerifyClientCertIfGiven
	if f.RequireClientCert {
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
