package auth

import (
	"crypto/tls"
	"strings"
)

// CertRule maps a verified client certificate to permissions, as the
// sseguard claim of a token does.
type CertRule struct {
	// Principal is the certificate name this rule grants to: a SAN URI
	// (spiffe://corp/svc/a), a SAN DNS name (svc-a.corp.example, compared
	// without regard to case) or a subject common name, compared exactly.
	Principal string
	// Permissions are granted as a token's sseguard claim grants them;
	// Verifier.Validate refuses "*" and "null" in Origins, and
	// PrincipalFromTLS drops them.
	Permissions
}

// PrincipalFromTLS returns the principal of the connection's verified
// client certificate, or nil when there is none (no TLS, no certificate, or
// one the TLS stack did not verify against its client CAs), when it has
// expired since the handshake, or when no rule names it.
//
// The leaf's names are tried in this order: each SAN URI, each SAN DNS
// name, then the subject common name. The first name that a rule lists
// wins, with the first such rule; the principal's Subject is that name and
// Expires is the certificate's NotAfter.
func (v *Verifier) PrincipalFromTLS(cs *tls.ConnectionState) *Principal {
	if cs == nil || len(v.ClientCerts) == 0 || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	leaf := cs.VerifiedChains[0][0]
	if !v.now().Before(leaf.NotAfter) {
		return nil
	}
	grant := func(name string, r *CertRule) *Principal {
		return &Principal{Subject: name, Permissions: r.Permissions.clean(), Expires: leaf.NotAfter, Source: SourceMTLS}
	}
	for _, u := range leaf.URIs {
		name := u.String()
		for i := range v.ClientCerts {
			if v.ClientCerts[i].Principal == name {
				return grant(name, &v.ClientCerts[i])
			}
		}
	}
	for _, name := range leaf.DNSNames {
		for i := range v.ClientCerts {
			if r := &v.ClientCerts[i]; strings.EqualFold(r.Principal, name) {
				return grant(r.Principal, r)
			}
		}
	}
	if name := leaf.Subject.CommonName; name != "" {
		for i := range v.ClientCerts {
			if v.ClientCerts[i].Principal == name {
				return grant(name, &v.ClientCerts[i])
			}
		}
	}
	return nil
}
