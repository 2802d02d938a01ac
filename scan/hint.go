package scan

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/sseguard/sseguard/scan/rawhttp"
)

// withHint adds what to try to a network error whose cause is usually
// the command line: TLS to a plain port, a certificate the scanner does
// not trust, HTTP/2 with prior knowledge to a server that speaks HTTP/1.
func (s *scanner) withHint(err error) error {
	if err == nil || errors.Is(err, ErrConfig) {
		return err
	}
	msg := err.Error()
	var rec tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var verify *tls.CertificateVerificationError
	hint := ""
	switch {
	case errors.As(err, &rec) || strings.Contains(msg, "does not look like a TLS handshake"):
		hint = "the server does not speak TLS on that port: use http://" + s.u.Host + " (or the port that serves TLS)"
	case errors.As(err, &unknown), errors.As(err, &invalid), errors.As(err, &host), errors.As(err, &verify),
		strings.Contains(msg, "x509:"):
		hint = "the server's certificate is not trusted: for a self-signed or staging certificate add --insecure (Config.Insecure) to skip verification; in production fix its chain or name"
	case s.cfg.Proto == rawhttp.HTTP2 && strings.EqualFold(s.u.Scheme, "http") && (strings.Contains(msg, "HTTP/2") || strings.Contains(msg, "frame")):
		hint = "the server does not speak HTTP/2 with prior knowledge (h2c) on plain http: drop --http2, or scan its https URL, where HTTP/2 is negotiated by ALPN"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w; hint: %s", err, hint)
}
