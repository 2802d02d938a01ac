package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// Key is one verification key with its pinned algorithm: a token is
// verified by a Key only when the token's alg header equals Algorithm.
type Key struct {
	// ID is the kid that selects this key. "" matches tokens without a
	// kid; when it is the only static key and there is no JWKS, it also
	// verifies tokens without a kid whatever its ID.
	ID string
	// Algorithm is one of HS256, HS384, HS512, RS256, PS256, ES256, ES384
	// and EdDSA.
	Algorithm string
	// Secret is the HMAC secret for HS256, HS384 and HS512: at least as
	// long as the hash (32, 48 and 64 bytes; RFC 7518 section 3.2).
	Secret []byte
	// Public is the public key for the other algorithms, of the type the
	// algorithm needs: *rsa.PublicKey of at least 2048 bits for RS256 and
	// PS256, *ecdsa.PublicKey on P-256 for ES256 and on P-384 for ES384,
	// ed25519.PublicKey for EdDSA.
	Public crypto.PublicKey
}

// hmacMinBytes is the shortest secret each HMAC algorithm accepts.
var hmacMinBytes = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// Validate reports why k cannot verify tokens, or nil.
func (k Key) Validate() error {
	switch k.Algorithm {
	case "":
		return errors.New("no algorithm")
	case "HS256", "HS384", "HS512":
		if k.Public != nil {
			return fmt.Errorf("%s takes a secret, not a public key", k.Algorithm)
		}
		if n := hmacMinBytes[k.Algorithm]; len(k.Secret) < n {
			return fmt.Errorf("%s secret is %d bytes, want at least %d", k.Algorithm, len(k.Secret), n)
		}
		return nil
	case "RS256", "PS256", "ES256", "ES384", "EdDSA":
		if len(k.Secret) > 0 {
			return fmt.Errorf("%s takes a public key, not a secret", k.Algorithm)
		}
	default:
		return fmt.Errorf("algorithm %q is not supported (use HS256, HS384, HS512, RS256, PS256, ES256, ES384 or EdDSA)", k.Algorithm)
	}
	switch k.Algorithm {
	case "RS256", "PS256":
		pub, ok := k.Public.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA public key, got %T", k.Algorithm, k.Public)
		}
		if n := pub.N.BitLen(); n < 2048 {
			return fmt.Errorf("%s key is %d bits, want at least 2048", k.Algorithm, n)
		}
	case "ES256", "ES384":
		want := elliptic.P256()
		if k.Algorithm == "ES384" {
			want = elliptic.P384()
		}
		pub, ok := k.Public.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an ECDSA public key, got %T", k.Algorithm, k.Public)
		}
		if pub.Curve != want {
			return fmt.Errorf("%s needs a key on %s, got %s", k.Algorithm, want.Params().Name, pub.Curve.Params().Name)
		}
	case "EdDSA":
		pub, ok := k.Public.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("EdDSA needs an Ed25519 public key, got %T", k.Public)
		}
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("EdDSA key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
		}
	}
	return nil
}

// material is what golang-jwt's signing method for k.Algorithm verifies
// with.
func (k Key) material() any {
	if k.Secret != nil {
		return k.Secret
	}
	return k.Public
}

// ParsePublicKeyPEM returns the public key in PEM data: the first "PUBLIC
// KEY" (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" block, whose
// key it returns without checking the certificate. Other blocks before it
// are skipped, but a private key is an error: it does not belong in a
// verifier's configuration.
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("auth: no PUBLIC KEY or CERTIFICATE block in the PEM data")
		}
		switch block.Type {
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: parse public key: %w", err)
			}
			return pub, nil
		case "RSA PUBLIC KEY":
			pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: parse RSA public key: %w", err)
			}
			return pub, nil
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("auth: parse certificate: %w", err)
			}
			return cert.PublicKey, nil
		}
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("auth: the PEM data holds a private key (%s); give the public key or a certificate", block.Type)
		}
	}
}
