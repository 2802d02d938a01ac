package auth

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Config describes a Verifier in the plain values of a configuration
// file's auth section; NewVerifier builds it. The hub and the proxy both
// build their verifier this way, each from its own file format.
type Config struct {
	// Keys are keys already in memory, such as the hub's HS256 secret;
	// they come before KeyFiles.
	Keys []Key
	// KeyFiles are keys read with LoadKey. An error names the entry as
	// auth.keys[i], as the files do.
	KeyFiles []KeyFile
	// JWKSURL, when set, is a JWKS fetched once by NewVerifier and then
	// refreshed every JWKSRefresh (zero means the JWKS default) until the
	// stop function is called.
	JWKSURL     string
	JWKSRefresh time.Duration
	// Audience, Issuer, Leeway, Cookie, QueryParam, Anonymous and
	// ClientCerts are the Verifier's fields of the same names.
	Audience    []string
	Issuer      string
	Leeway      time.Duration
	Cookie      string
	QueryParam  string
	Anonymous   []string
	ClientCerts []CertRule
}

// KeyFile names a verification key kept in files; see LoadKey.
type KeyFile struct {
	ID, Algorithm, SecretFile, PublicKeyFile string
}

// NewVerifier loads the keys that c names, starts its JWKS refresh, and
// returns the validated Verifier with the function that stops the
// refresh. The stop function is never nil, and may be called more than
// once. log receives the JWKS refresh's warnings; nil means slog.Default.
func NewVerifier(ctx context.Context, c Config, log *slog.Logger) (v *Verifier, stop func(), err error) {
	v = &Verifier{
		Keys:        append([]Key(nil), c.Keys...),
		Audience:    c.Audience,
		Issuer:      c.Issuer,
		Leeway:      c.Leeway,
		Cookie:      c.Cookie,
		QueryParam:  c.QueryParam,
		Anonymous:   c.Anonymous,
		ClientCerts: c.ClientCerts,
	}
	for i, k := range c.KeyFiles {
		key, err := LoadKey(k.ID, k.Algorithm, k.SecretFile, k.PublicKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("auth.keys[%d].%w", i, err)
		}
		v.Keys = append(v.Keys, key)
	}
	stop = func() {}
	if c.JWKSURL != "" {
		j := &JWKS{URL: c.JWKSURL, Refresh: c.JWKSRefresh, Logger: log}
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
