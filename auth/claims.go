package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// Reasons a token is not in its one canonical form; refusal reports them
// as malformed.
var (
	errNotCanonical = errors.New("the token is not canonical base64url")
	errDuplicate    = errors.New("a name appears twice")
)

// canonical checks what golang-jwt's strict decoding leaves out: that tok
// has three parts of base64url characters only (the decoder skips CR and
// LF, which a query parameter or a form value can carry), and that its
// header is exact JSON (valid UTF-8, no name twice). The claims are
// checked by Claims.UnmarshalJSON.
func canonical(tok string) error {
	parts := 0
	for i := range len(tok) {
		switch c := tok[i]; {
		case c == '.':
			parts++
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("%w: byte %d is %q", errNotCanonical, i, c)
		}
	}
	if parts != 2 {
		return fmt.Errorf("%w: want 3 parts, got %d", errNotCanonical, parts+1)
	}
	head, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.Strict().DecodeString(head)
	if err != nil {
		return fmt.Errorf("%w: header: %w", errNotCanonical, err)
	}
	if err := exactJSON(b); err != nil {
		return fmt.Errorf("%w: header: %w", jwt.ErrTokenMalformed, err)
	}
	return nil
}

// signedHash identifies a canonical token by its header and claims: 128
// bits of their SHA-256, in hex. The signature is left out because an
// ECDSA signature has two valid forms, (r, s) and (r, n-s), and anyone
// holding the token can write the other.
func signedHash(tok string) string {
	sum := sha256.Sum256([]byte(tok[:strings.LastIndexByte(tok, '.')]))
	return hex.EncodeToString(sum[:16])
}

// exactJSON reports whether data is one JSON value in valid UTF-8 in which
// no object has a name twice. encoding/json would keep the last of two
// names and replace bad UTF-8 silently, so two readers could see two
// different claim sets in one token.
func exactJSON(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkJSON(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON value")
	}
	return nil
}

// walkJSON reads one value from dec, refusing repeated names in objects.
// Names are compared after unescaping, so "s\u0075b" repeats "sub".
func walkJSON(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch t {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			t, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := t.(string) // the decoder allows only strings here
			if seen[name] {
				return fmt.Errorf("%w: %q", errDuplicate, name)
			}
			seen[name] = true
			if err := walkJSON(dec); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := walkJSON(dec); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	_, err = dec.Token() // the closing delimiter
	return err
}

// UnmarshalJSON decodes a claim set exactly: claim names are matched with
// their case (encoding/json would let "SUB" or "Sseguard" stand for "sub"
// and "sseguard"), and a name that appears twice anywhere is an error.
// Claims other than the registered ones and "sseguard" are ignored.
func (c *Claims) UnmarshalJSON(data []byte) error {
	if err := exactJSON(data); err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return err
	}
	*c = Claims{}
	fields := []struct {
		name string
		dst  any
	}{
		{"iss", &c.Issuer},
		{"sub", &c.Subject},
		{"aud", &c.Audience},
		{"exp", &c.ExpiresAt},
		{"nbf", &c.NotBefore},
		{"iat", &c.IssuedAt},
		{"jti", &c.ID},
		{ClaimNamespace, (*exactPermissions)(&c.Sseguard)},
	}
	for _, f := range fields {
		raw, ok := top[f.name]
		if !ok {
			continue
		}
		// A NumericDate is a JSON number (RFC 7519 section 2); golang-jwt
		// would also take a quoted one.
		if _, date := f.dst.(**jwt.NumericDate); date && len(raw) > 0 && raw[0] == '"' {
			return fmt.Errorf("claim %s: a string, want a number", f.name)
		}
		if err := json.Unmarshal(raw, f.dst); err != nil {
			return fmt.Errorf("claim %s: %w", f.name, err)
		}
	}
	return nil
}

// exactPermissions decodes the sseguard claim with case-sensitive names.
// It is not a method of Permissions, which Principal embeds.
type exactPermissions Permissions

func (p *exactPermissions) UnmarshalJSON(data []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*p = exactPermissions{}
	fields := []struct {
		name string
		dst  *[]string
	}{
		{"subscribe", &p.Subscribe},
		{"publish", &p.Publish},
		{"origins", &p.Origins},
	}
	for _, f := range fields {
		if raw, ok := m[f.name]; ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return fmt.Errorf("%s: %w", f.name, err)
			}
		}
	}
	if raw, ok := m["presence"]; ok {
		if err := json.Unmarshal(raw, &p.Presence); err != nil {
			return fmt.Errorf("presence: %w", err)
		}
	}
	return nil
}
