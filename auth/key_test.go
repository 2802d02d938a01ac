package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestKeyValidate(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	small, err := rsaGenerate(1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPub := &rsaPriv().PublicKey
	tests := []struct {
		name string
		key  Key
		want string // "" means valid
	}{
		{"HS256 32 bytes", Key{Algorithm: "HS256", Secret: make([]byte, 32)}, ""},
		{"HS256 31 bytes", Key{Algorithm: "HS256", Secret: make([]byte, 31)}, "at least 32"},
		{"HS384 48 bytes", Key{Algorithm: "HS384", Secret: make([]byte, 48)}, ""},
		{"HS384 32 bytes", Key{Algorithm: "HS384", Secret: make([]byte, 32)}, "at least 48"},
		{"HS512 64 bytes", Key{Algorithm: "HS512", Secret: make([]byte, 64)}, ""},
		{"HS512 48 bytes", Key{Algorithm: "HS512", Secret: make([]byte, 48)}, "at least 64"},
		{"HS256 with a public key", Key{Algorithm: "HS256", Secret: make([]byte, 32), Public: rsaPub}, "public key"},
		{"RS256", Key{Algorithm: "RS256", Public: rsaPub}, ""},
		{"PS256", Key{Algorithm: "PS256", Public: rsaPub}, ""},
		{"RS256 1024 bits", Key{Algorithm: "RS256", Public: &small.PublicKey}, "2048"},
		{"RS256 with a secret", Key{Algorithm: "RS256", Public: rsaPub, Secret: make([]byte, 32)}, "secret"},
		{"RS256 with an EC key", Key{Algorithm: "RS256", Public: &p256.PublicKey}, "RSA"},
		{"RS256 with a private key", Key{Algorithm: "RS256", Public: rsaPriv()}, "RSA public key"},
		{"RS256 without a key", Key{Algorithm: "RS256"}, "RSA public key"},
		{"ES256", Key{Algorithm: "ES256", Public: &p256.PublicKey}, ""},
		{"ES384", Key{Algorithm: "ES384", Public: &p384.PublicKey}, ""},
		{"ES256 with P-384", Key{Algorithm: "ES256", Public: &p384.PublicKey}, "P-256"},
		{"ES384 with P-256", Key{Algorithm: "ES384", Public: &p256.PublicKey}, "P-384"},
		{"ES256 with P-521", Key{Algorithm: "ES256", Public: &p521.PublicKey}, "P-256"},
		{"ES256 with an RSA key", Key{Algorithm: "ES256", Public: rsaPub}, "ECDSA"},
		{"EdDSA", Key{Algorithm: "EdDSA", Public: edPub}, ""},
		{"EdDSA with a private key", Key{Algorithm: "EdDSA", Public: edPriv}, "Ed25519 public key"},
		{"EdDSA with a short key", Key{Algorithm: "EdDSA", Public: ed25519.PublicKey(edPub[:16])}, "want 32"},
		{"none", Key{Algorithm: "none"}, "not supported"},
		{"empty algorithm", Key{Secret: make([]byte, 32)}, "no algorithm"},
		{"RS384 is not offered", Key{Algorithm: "RS384", Public: rsaPub}, "not supported"},
		{"lower-case name", Key{Algorithm: "hs256", Secret: make([]byte, 32)}, "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.key.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v; want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkix1, _ := x509.MarshalPKIXPublicKey(&ecPriv.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecPriv.PublicKey, ecPriv)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(ecPriv)
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	tests := []struct {
		name string
		data []byte
		want string // "" means it parses to ecPriv's public key, or "rsa"
	}{
		{"PKIX public key", block("PUBLIC KEY", pkix1), ""},
		{"certificate", block("CERTIFICATE", certDER), ""},
		{"after other blocks", append(block("X-COMMENT", []byte("hi")), block("PUBLIC KEY", pkix1)...), ""},
		{"PKCS#1 RSA public key", block("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaPriv().PublicKey)), "rsa"},
		{"private key", block("PRIVATE KEY", privDER), "private key"},
		{"EC private key", block("EC PRIVATE KEY", privDER), "private key"},
		{"no PEM", []byte("not pem"), "no PUBLIC KEY"},
		{"corrupt public key", block("PUBLIC KEY", []byte("junk")), "parse"},
		{"corrupt certificate", block("CERTIFICATE", []byte("junk")), "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParsePublicKeyPEM(tt.data)
			switch tt.want {
			case "":
				if err != nil {
					t.Fatal(err)
				}
				if !ecPriv.PublicKey.Equal(pub) {
					t.Fatalf("got %T, not the key", pub)
				}
			case "rsa":
				if err != nil || !rsaPriv().PublicKey.Equal(pub) {
					t.Fatalf("got %T, %v", pub, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err %v; want it to mention %q", err, tt.want)
				}
				if strings.Contains(err.Error(), "BEGIN") {
					t.Fatal("the error quotes the PEM data")
				}
			}
		})
	}
}
