package proxy_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/proxy"
)

func TestExampleConfig(t *testing.T) {
	c, err := proxy.LoadConfig("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 3 || c.Routes[0].Upstream != "http://127.0.0.1:3000" || c.Routes[1].Fallback != "/api/poll" ||
		c.Heartbeat.D() != 15*time.Second || c.Auth.SubjectHeader != "X-User" || c.DriftLogInterval.D() != time.Minute {
		t.Errorf("parsed %+v", c)
	}
	// docs/proxy.md shows this file as it is.
	doc, err := os.ReadFile("../docs/proxy.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile("testdata/example.yaml")
	if !strings.Contains(string(doc), "```yaml\n"+string(raw)+"```") {
		t.Error("docs/proxy.md does not show testdata/example.yaml verbatim in a yaml block")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := &proxy.Config{Upstream: "http://127.0.0.1:3000"}
	c.Fill()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Routes) != 1 || c.Routes[0].Prefix != "/" || c.Routes[0].Kind != proxy.KindAuto || c.Routes[0].Auth != proxy.AuthNone ||
		c.Listen != proxy.DefaultListen || c.HeaderTimeout.D() != proxy.DefaultHeaderTimeout || c.RetryAfter.D() != proxy.DefaultRetryAfter {
		t.Errorf("defaults %+v", c)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "upstream: http://a\nheartbaet: 1s\n", []string{"heartbaet"}},
		{"no upstream", "routes: [{prefix: /x}]\n", []string{"routes[0].upstream"}},
		{"bad upstream", "upstream: ftp://a\n", []string{"upstream: \"ftp://a\": want an absolute http"}},
		{"bad kind and auth", "upstream: http://a\nroutes: [{prefix: /x, kind: sse, auth: basic}]\n", []string{"routes[0].kind", "routes[0].auth"}},
		{"jwt without keys", "upstream: http://a\nroutes: [{prefix: /x, auth: jwt}]\n", []string{"routes[0].auth: jwt needs auth.keys"}},
		{"topic without auth", "upstream: http://a\nroutes: [{prefix: /x, topic_param: t}]\n", []string{"routes[0].topic_param"}},
		{"prefix", "upstream: http://a\nroutes: [{prefix: x}, {prefix: /y}, {prefix: /y}]\n", []string{"routes[0].prefix", "routes[2].prefix"}},
		{"allowlists", "upstream: http://a\nresponse_headers: [Connection, Access-Control-Allow-Origin]\nrequest_headers: [X-Sseguard-Subject, Accept-Encoding]\n",
			[]string{"response_headers[0]", "response_headers[1]", "request_headers[0]", "request_headers[1]"}},
		{"origins", "upstream: http://a\ncors: {allowed_origins: ['*', 'https://ok.example', 'null']}\n", []string{"cors.allowed_origins[0]", "cors.allowed_origins[2]"}},
		{"durations", "upstream: http://a\nheader_timeout: -1s\nprofile: loose\n", []string{"header_timeout", "profile"}},
		{"tls and log", "upstream: http://a\ntls: {cert_file: c.pem, client_ca_file: ca.pem}\nlog: {format: xml, level: loud}\n",
			[]string{"tls: cert_file and key_file", "tls.client_ca_file", "log.format", "log.level"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := proxy.ParseConfig([]byte(tc.yaml))
			if err == nil {
				c.Fill()
				err = c.Validate()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
