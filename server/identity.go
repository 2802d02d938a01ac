package server

import (
	"context"
	"crypto/tls"
	"log/slog"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/internal/httpserve"
)

// NewVerifier builds, with auth.NewVerifier, the token and certificate
// verifier that cfg describes: the HS256 secret, the keys of auth.keys,
// the JWKS of auth.jwks_url (fetched once now; refreshed until stop is
// called), the audience, issuer, leeway, token sources, anonymous topics
// and client-certificate rules. Zero fields of cfg mean their defaults, as
// in New.
func NewVerifier(ctx context.Context, cfg *config.Config, secret []byte, log *slog.Logger) (v *auth.Verifier, stop func(), err error) {
	cfg = withDefaults(cfg)
	c := cfg.Auth.AuthConfig()
	c.Keys = []auth.Key{{ID: "", Algorithm: "HS256", Secret: secret}}
	c.Anonymous = *cfg.Auth.AnonymousSubscribe
	for _, r := range cfg.Auth.ClientCerts {
		c.ClientCerts = append(c.ClientCerts, auth.CertRule{Principal: r.Principal,
			Permissions: auth.Permissions{Subscribe: r.Subscribe, Publish: r.Publish, Origins: r.Origins}})
	}
	return auth.NewVerifier(ctx, c, log)
}

// TLSConfig returns the HTTPS configuration of cfg's tls section, or nil
// for plain HTTP. With a client CA, client certificates are verified
// (optionally, or required by tls.client_auth) and mapped by
// auth.client_certs.
func TLSConfig(cfg *config.Config) (*tls.Config, error) {
	return httpserve.LoadTLS(httpserve.TLSFiles{
		CertFile:          cfg.TLS.CertFile,
		KeyFile:           cfg.TLS.KeyFile,
		ClientCAFile:      cfg.TLS.ClientCAFile,
		RequireClientCert: cfg.TLS.ClientAuth == "require",
	})
}
