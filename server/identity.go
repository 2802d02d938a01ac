package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
)

// NewVerifier builds the token and certificate verifier that cfg
// describes: the HS256 secret, the keys of auth.keys, the JWKS of
// auth.jwks_url (fetched once now; refreshed until stop is called), the
// audience, issuer, leeway, token sources and client-certificate rules.
func NewVerifier(ctx context.Context, cfg *config.Config, secret []byte, log *slog.Logger) (v *auth.Verifier, stop func(), err error) {
	v = &auth.Verifier{
		Keys:       []auth.Key{{ID: "", Algorithm: "HS256", Secret: secret}},
		Audience:   cfg.Auth.Audience,
		Issuer:     cfg.Auth.Issuer,
		Leeway:     cfg.Auth.Leeway.D(),
		Cookie:     cfg.Auth.Cookie,
		QueryParam: cfg.Auth.QueryParam,
		Anonymous:  *cfg.Auth.AnonymousSubscribe,
	}
	for i, k := range cfg.Auth.Keys {
		key, err := auth.LoadKey(k.ID, k.Algorithm, k.SecretFile, k.PublicKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("auth.keys[%d].%w", i, err)
		}
		v.Keys = append(v.Keys, key)
	}
	for _, r := range cfg.Auth.ClientCerts {
		v.ClientCerts = append(v.ClientCerts, auth.CertRule{Principal: r.Principal,
			Permissions: auth.Permissions{Subscribe: r.Subscribe, Publish: r.Publish, Origins: r.Origins}})
	}
	stop = func() {}
	if cfg.Auth.JWKSURL != "" {
		j := &auth.JWKS{URL: cfg.Auth.JWKSURL, Refresh: cfg.Auth.JWKSRefresh.D(), Logger: log}
		if err := j.Start(ctx); err != nil {
			return nil, nil, fmt.Errorf("auth.jwks_url: %w", err)
		}
		v.JWKS = j
		stop = j.Stop
	}
	if err := v.Validate(); err != nil {
		stop()
		return nil, nil, err
	}
	return v, stop, nil
}

// TLSConfig returns the HTTPS configuration of cfg's tls section, or nil
// for plain HTTP. With a client CA, client certificates are verified
// (optionally, or required by tls.client_auth) and mapped by
// auth.client_certs.
func TLSConfig(cfg *config.Config) (*tls.Config, error) {
	if cfg.TLS.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file, tls.key_file: %w", err)
	}
	tc := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if cfg.TLS.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file: no PEM certificate in %s", cfg.TLS.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
		if cfg.TLS.ClientAuth == "require" {
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}
