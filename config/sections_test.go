package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
)

func TestCanonicalOrigin(t *testing.T) {
	tests := []struct {
		in, want string // want "" for a refusal
	}{
		{"https://app.example", "https://app.example"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://App.Example", "https://app.example"},
		{"HTTPS://app.example", "https://app.example"},
		{"https://app.example/", "https://app.example"},
		{"https://app.example/path", "https://app.example"},
		{"https://app.example?x=1", "https://app.example"},
		{"https://app.example#top", "https://app.example"},
		{"https://app.example:443", "https://app.example"},
		{"http://app.example:80", "http://app.example"},
		{"http://app.example:443", "http://app.example:443"},
		{"https://app.example:8443", "https://app.example:8443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"http://[0:0:0:0:0:0:0:1]", "http://[::1]"},
		{"https://bücher.example", "https://xn--bcher-kva.example"},
		{"https://my_host.example", "https://my_host.example"},
		{"null", ""},
		{"*", ""},
		{"", ""},
		{"app.example", ""},
		{"ftp://app.example", ""},
		{"https://", ""},
		{"https:app.example", ""},
		{"https://u:hunter2@app.example", ""},
		{"https://app.example:port", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := CanonicalOrigin(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("accepted as %q", got)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q repeats the password", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestOriginsRefusedWithCanonicalForm checks that an origin that would
// never equal a browser's Origin header is refused, naming what to write,
// wherever origins are listed.
func TestOriginsRefusedWithCanonicalForm(t *testing.T) {
	for _, field := range []string{"cors.allowed_origins[0]", "cors.anonymous_origins[0]", "auth.client_certs[0].origins[0]"} {
		for _, o := range []string{"https://App.Example", "https://app.example/", "https://app.example?q=1", "https://app.example:443"} {
			c := Default()
			switch field {
			case "cors.allowed_origins[0]":
				c.CORS.AllowedOrigins = []string{o}
			case "cors.anonymous_origins[0]":
				c.CORS.AllowedOrigins = []string{"https://app.example"}
				c.CORS.AnonymousOrigins = []string{o}
			default:
				c.TLS = TLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca", ClientAuth: "optional"}
				c.Auth.ClientCerts = []CertRule{{Principal: "svc", Origins: []string{o}}}
			}
			var found bool
			for _, fe := range fieldErrorsOf(c.Validate()) {
				if fe.Field == field {
					found = true
					if !strings.Contains(fe.Problem, `write "https://app.example"`) {
						t.Errorf("%s = %q: %q does not name the canonical form", field, o, fe.Problem)
					}
				}
			}
			if !found {
				t.Errorf("%s = %q accepted", field, o)
			}
		}
	}
}

func TestApplyAccept(t *testing.T) {
	tests := []struct {
		accept string
		want   policy.AcceptMode
		err    bool
	}{
		{"", policy.Baseline.Accept, false},
		{"strict", policy.AcceptStrict, false},
		{"lenient", policy.AcceptLenient, false},
		{"Lenient", policy.Baseline.Accept, true},
		{"any", policy.Baseline.Accept, true},
	}
	for _, tt := range tests {
		p := policy.Baseline.Clone()
		err := ApplyAccept(p, tt.accept)
		if (err != nil) != tt.err || p.Accept != tt.want {
			t.Errorf("ApplyAccept(%q): mode %v, err %v; want %v, error %v", tt.accept, p.Accept, err, tt.want, tt.err)
		}
	}
}

// TestSectionsNameFieldsUnderPrefix checks that a shared section names its
// fields under the path its file gives it, or at the top level.
func TestSectionsNameFieldsUnderPrefix(t *testing.T) {
	tests := []struct {
		name   string
		err    func(prefix string) error
		fields []string
	}{
		{"policy", (&Policy{Profile: "x", Accept: "y"}).Validate, []string{"profile", "accept"}},
		{"tokens", (&Tokens{Cookie: "a b", Keys: []Key{{Algorithm: "HS256"}}, JWKSURL: "http://idp.example/", JWKSRefresh: -1}).Validate,
			[]string{"cookie", "keys[0]", "jwks_url", "jwks_refresh"}},
		{"cors", (&CORS{AllowedOrigins: []string{"*"}, MaxAge: -1}).Validate, []string{"allowed_origins[0]", "max_age"}},
		{"tls", (&TLS{CertFile: "c", ClientAuth: "optional"}).Validate, []string{""}},
		{"request limits", (&RequestLimits{MaxHeaderBytes: 1, ReadHeaderTimeout: -1}).Validate, []string{"max_header_bytes", "read_header_timeout"}},
		{"log", (&Log{Format: "xml", Level: "loud"}).Validate, []string{"format", "level"}},
	}
	for _, tt := range tests {
		for _, prefix := range []string{"", "sect"} {
			t.Run(tt.name+"/"+prefix, func(t *testing.T) {
				var got, want []string
				for _, fe := range fieldErrorsOf(tt.err(prefix)) {
					got = append(got, fe.Field)
				}
				for _, f := range tt.fields {
					want = append(want, join(prefix, f))
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("fields %q, want %q", got, want)
				}
			})
		}
	}
}

func TestLogLevelCase(t *testing.T) {
	for _, l := range []string{"debug", "INFO", "Warn", "error"} {
		if err := (&Log{Level: l}).Validate("log"); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
}

// TestDecodeListOfSections checks that an unknown key inside a list of
// sections lists the keys allowed there.
func TestDecodeListOfSections(t *testing.T) {
	_, err := Parse([]byte("auth:\n  keys:\n    - algorithm: HS256\n      secret_fil: k\n"))
	want := "line 4: auth.keys[0].secret_fil: unknown key; want one of id, algorithm, secret_file, public_key_file"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestKnownKeys(t *testing.T) {
	type inner struct {
		B string `yaml:"b"`
		C int    `yaml:"c"`
	}
	type outer struct {
		A     string `yaml:"a"`
		inner `yaml:",inline"`
		D     bool   `yaml:"d"`
		E     string `yaml:"-"`
	}
	if got, want := KnownKeys(&outer{}), []string{"a", "b", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Errorf("KnownKeys = %q, want %q", got, want)
	}
	got := KnownKeys(Config{})
	if !reflect.DeepEqual(got[:5], []string{"listen", "data", "profile", "accept", "shutdown_timeout"}) {
		t.Errorf("KnownKeys(Config) = %q", got)
	}
}

func TestLocate(t *testing.T) {
	data := []byte("listen: x\nroutes:\n  - prefix: /a\n    kind: k\n  - prefix: /b\ntls:\n  cert_file: c\n")
	err := errors.Join(
		&FieldError{Field: "nowhere", Problem: "default"},
		&FieldError{Field: "routes[1].upstream", Problem: "missing"},
		&FieldError{Field: "tls", Problem: "cert_file and key_file go together"},
		&FieldError{Field: "routes[0].kind", Problem: "bad"},
		&FieldError{Field: "listen", Problem: "bad", Line: 99},
		errors.New("no field"),
	)
	got := Locate(data, err).Error()
	want := strings.Join([]string{
		"line 4: routes[0].kind: bad",
		"line 5: routes[1].upstream: missing",
		"line 6: tls: cert_file and key_file go together",
		"line 99: listen: bad",
		"nowhere: default",
		"no field",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if Locate(data, nil) != nil {
		t.Error("Locate(nil) is not nil")
	}
}

func TestTokensAuthConfig(t *testing.T) {
	c, err := Parse([]byte("auth:\n  keys: [{id: a, algorithm: ES256, public_key_file: k.pem}]\n  jwks_url: https://idp.example/jwks\n  audience: [feed]\n  issuer: https://idp.example\n  query_param: access_token\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Auth.Tokens.AuthConfig()
	want := auth.Config{
		KeyFiles:    []auth.KeyFile{{ID: "a", Algorithm: "ES256", PublicKeyFile: "k.pem"}},
		JWKSURL:     "https://idp.example/jwks",
		JWKSRefresh: 15 * time.Minute,
		Audience:    []string{"feed"},
		Issuer:      "https://idp.example",
		Leeway:      auth.DefaultLeeway,
		Cookie:      auth.DefaultCookie,
		QueryParam:  "access_token",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AuthConfig() = %+v\nwant %+v", got, want)
	}
}
