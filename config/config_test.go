package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from testdata/*.yaml")

// TestFullYAMLIsDefault keeps testdata/full.yaml, the documented example
// of every key, equal to Default.
func TestFullYAMLIsDefault(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("testdata/full.yaml differs from Default():\n got %s\nwant %s", render(t, c), render(t, Default()))
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Default() is not valid: %v", err)
	}
}

// TestFill: Fill gives a Config built in code the defaults of the fields
// it leaves at zero, and keeps what it sets, an explicit 0 behind a
// pointer included. It is Config's own Fill, not the promoted Policy.Fill
// that fills the profile only.
func TestFill(t *testing.T) {
	var zero Config
	zero.Fill()
	if !reflect.DeepEqual(&zero, Default()) {
		t.Errorf("a zero Config after Fill:\n got %s\nwant %s", render(t, &zero), render(t, Default()))
	}
	keepAll := 0
	c := &Config{Listen: "127.0.0.1:9090", Stream: Stream{Heartbeat: Duration(time.Second)}}
	c.Policy.Profile = "baseline"
	c.Store.MaxEventsPerTopic = &keepAll
	c.Fill()
	want := Default()
	want.Listen, want.Stream.Heartbeat, want.Policy.Profile = "127.0.0.1:9090", Duration(time.Second), "baseline"
	want.Store.MaxEventsPerTopic = &keepAll
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Fill changed what was set, or missed a default:\n got %s\nwant %s", render(t, c), render(t, want))
	}
}

// TestFullYAMLHasEveryKey checks that full.yaml sets every key of Config,
// each with a comment, so that it stays a complete example.
func TestFullYAMLHasEveryKey(t *testing.T) {
	raw, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		t.Fatal(err)
	}
	comments := map[string]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := strings.TrimPrefix(prefix+"."+k.Value, ".")
			comments[path] = k.HeadComment + k.LineComment + v.LineComment
			if v.Kind == yaml.MappingNode {
				walk(v, path)
			}
		}
	}
	walk(root.Content[0], "")
	for _, k := range keys(t) {
		c, ok := comments[k.path]
		switch {
		case !ok:
			t.Errorf("testdata/full.yaml lacks %s", k.path)
		case strings.TrimSpace(c) == "":
			t.Errorf("testdata/full.yaml: %s has no comment", k.path)
		}
	}
}

// TestGolden renders each testdata/*.yaml as sseguard sees it: the
// effective configuration, or the errors "sseguard config check" shows,
// with their lines. Run with
// -update after a deliberate change to defaults or messages.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			c, err := Parse(data)
			switch {
			case err != nil:
				got = "parse errors:\n" + err.Error() + "\n"
			case c.Validate() != nil:
				got = "validation errors:\n" + Locate(data, c.Validate()).Error() + "\n"
			default:
				got = render(t, c)
			}
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./config -run TestGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s is out of date (run go test ./config -run TestGolden -update after checking the diff)\n got:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(c *Config) // applied to Default()
	}{
		{"empty file", "", nil},
		{"only comments", "# nothing set yet\n", nil},
		{"empty document", "---\n", nil},
		{"empty section", "stream:\n", nil},
		{"empty value takes the default", "stream:\n  heartbeat:\n", nil},
		{"zero duration takes the default", "stream:\n  heartbeat: 0s\n", nil},
		{"zero int takes the default", "poll:\n  max_events: 0\n", nil},
		{"max_events_per_topic 0 keeps all", "store:\n  max_events_per_topic: 0\n", func(c *Config) {
			*c.Store.MaxEventsPerTopic = 0
		}},
		{"max_age 0s keeps all", "store:\n  max_age: 0s\n", func(c *Config) {
			*c.Store.MaxAge = 0
		}},
		{"max_age 0 without unit", "store:\n  max_age: 0\n", func(c *Config) {
			*c.Store.MaxAge = 0
		}},
		{"anonymous_subscribe [] stays empty", "auth:\n  anonymous_subscribe: []\n", func(c *Config) {
			c.Auth.AnonymousSubscribe = &[]string{}
		}},
		{"anonymous_subscribe null takes the default", "auth:\n  anonymous_subscribe:\n", nil},
		{"anonymous_subscribe block list", "auth:\n  anonymous_subscribe:\n    - news\n    - public.*\n", func(c *Config) {
			c.Auth.AnonymousSubscribe = &[]string{"news", "public.*"}
		}},
		{"durations", "shutdown_timeout: 1m30s\nstream:\n  heartbeat: 500ms\npoll:\n  max_wait: 2m\n", func(c *Config) {
			c.ShutdownTimeout = Duration(90 * time.Second)
			c.Stream.Heartbeat = Duration(500 * time.Millisecond)
			c.Poll.MaxWait = Duration(2 * time.Minute)
		}},
		{"quoted duration", "stream:\n  retry: \"5s\"\n", func(c *Config) {
			c.Stream.Retry = Duration(5 * time.Second)
		}},
		{"port as a number is a string", "listen: 8080\n", func(c *Config) {
			c.Listen = "8080" // Validate refuses it
		}},
		{"top-level keys", "listen: 0.0.0.0:9000\ndata: /var/lib/sseguard\nprofile: baseline\naccept: lenient\n", func(c *Config) {
			c.Listen, c.Data, c.Profile, c.Accept = "0.0.0.0:9000", "/var/lib/sseguard", "baseline", "lenient"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			want := Default()
			if tt.want != nil {
				tt.want(want)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %s\nwant %s", render(t, got), render(t, want))
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each error's text, in order
	}{
		{"unknown top-level key", "listen: 127.0.0.1:80\nlisen: :80\n", []string{
			"line 2: lisen: unknown key; want one of listen, data, profile, accept, shutdown_timeout, store, stream, poll, ws, publish, auth, cors, tls, limits, telemetry, dashboard, presence, log",
		}},
		{"unknown nested key", "stream:\n  heartbeat: 5s\n  hearbeat: 5s\n", []string{
			"line 3: stream.hearbeat: unknown key; want one of heartbeat, retry, write_timeout, queue_bytes, max_topics, replay_bytes",
		}},
		{"duration as int", "stream:\n  heartbeat: 5\n", []string{
			`line 2: stream.heartbeat: want a duration such as "15s", got "5"`,
		}},
		{"duration as word", "stream:\n  heartbeat: abc\n", []string{
			`line 2: stream.heartbeat: want a duration such as "15s", got "abc"`,
		}},
		{"duration as list", "poll:\n  max_wait: [1s]\n", []string{
			`line 2: poll.max_wait: want a duration such as "15s", got a list`,
		}},
		{"duration on the next line", "stream:\n  retry:\n    soon\n", []string{
			`line 3: stream.retry: want a duration such as "15s", got "soon"`,
		}},
		{"pointer duration", "store:\n  max_age: forever\n", []string{
			`line 2: store.max_age: want a duration such as "15s", got "forever"`,
		}},
		{"int as word", "poll:\n  max_events: many\n", []string{
			`line 2: poll.max_events: want an integer, got "many"`,
		}},
		{"int as duration", "store:\n  max_events_per_topic: 10s\n", []string{
			`line 2: store.max_events_per_topic: want an integer, got "10s"`,
		}},
		{"int64 with unit", "publish:\n  max_body_bytes: 1MB\n", []string{
			`line 2: publish.max_body_bytes: want an integer, got "1MB"`,
		}},
		{"string as list", "listen: [a, b]\n", []string{
			"line 1: listen: want a string, got a list",
		}},
		{"section as scalar", "stream: 5\n", []string{
			`line 1: stream: want a mapping, got "5"`,
		}},
		{"list as scalar", "auth:\n  anonymous_subscribe: demo\n", []string{
			`line 2: auth.anonymous_subscribe: want a list of strings, got "demo"`,
		}},
		{"long value cut short by the decoder", "auth:\n  anonymous_subscribe: https://app.example/a/long/path\n", []string{
			`line 2: auth.anonymous_subscribe: want a list of strings, got "https://app.example/a/long/path"`,
		}},
		{"unknown key in a flow mapping", "stream: {heartbeat: 5s, retyr: 1s}\n", []string{
			"line 1: stream.retyr: unknown key; want one of heartbeat, retry, write_timeout, queue_bytes, max_topics, replay_bytes",
		}},
		{"list item as mapping", "auth:\n  anonymous_subscribe:\n    - news\n    - {topic: x}\n", []string{
			"line 4: auth.anonymous_subscribe[1]: want a string, got a mapping",
		}},
		{"file as list", "- listen\n", []string{
			"line 1: want a mapping, got a list",
		}},
		{"file as scalar", "hello\n", []string{
			`line 1: want a mapping, got "hello"`,
		}},
		{"repeated key", "stream:\n  heartbeat: 5s\n  heartbeat: 6s\n", []string{
			"line 3: stream.heartbeat: repeated key, first set at line 2",
		}},
		{"all reported at once", "stream:\n  heartbeat: 5\n  retry: abc\npoll:\n  max_events: x\nbogus: 1\n", []string{
			`line 2: stream.heartbeat: want a duration such as "15s", got "5"`,
			`line 3: stream.retry: want a duration such as "15s", got "abc"`,
			`line 5: poll.max_events: want an integer, got "x"`,
			"line 6: bogus: unknown key; want one of listen, data, profile, accept, shutdown_timeout, store, stream, poll, ws, publish, auth, cors, tls, limits, telemetry, dashboard, presence, log",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %s", render(t, c))
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n%s\nwant:\n%s", err, strings.Join(tt.want, "\n"))
			}
			fes := fieldErrorsOf(err)
			if len(fes) != len(tt.want) {
				t.Fatalf("%d *FieldError in %v, want %d", len(fes), err, len(tt.want))
			}
			for _, fe := range fes {
				if fe.Line == 0 {
					t.Errorf("%v: Line not set", fe)
				}
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"two documents", "listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "line 2: a second YAML document after ---; want one"},
		{"syntax", "stream:\n  heartbeat: 5s\n retry: 1s\n", "line 2: not YAML: "},
		{"tab indent", "stream:\n\theartbeat: 5s\n", "line 2: not YAML: found character that cannot start any token"},
		{"second document broken", "listen: 127.0.0.1:1\n---\n[\n", "line 3: not YAML: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want prefix %q", err, tt.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Line == 0 {
				t.Errorf("got %#v, want a *FieldError with a line", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("stream:\n  hearbeat: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if want := bad + ": line 2: stream.hearbeat: unknown key"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want prefix %q", err, want)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "stream.hearbeat" || fe.Line != 2 {
		t.Errorf("errors.As(*FieldError) = %+v", fe)
	}

	missing := filepath.Join(dir, "missing.yaml")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		field string // "" for a valid file
	}{
		{"listen without port", "listen: localhost\n", "listen"},
		{"listen port only as number", "listen: 8080\n", "listen"},
		{"profile unknown", "profile: paranoid\n", "profile"},
		{"accept unknown", "accept: any\n", "accept"},
		{"shutdown_timeout negative", "shutdown_timeout: -1s\n", "shutdown_timeout"},
		{"store.driver unknown", "store:\n  driver: mongo\n", "store.driver"},
		{"store.redis without address", "store:\n  driver: redis\n", "store.redis.url"},
		{"store.redis url and addrs", "store:\n  driver: redis\n  redis:\n    url: redis://127.0.0.1:6379\n    addrs: [\"127.0.0.1:6380\"]\n", "store.redis.url"},
		{"store.redis url scheme", "store:\n  driver: redis\n  redis:\n    url: http://127.0.0.1:6379\n", "store.redis.url"},
		{"store.redis addr without port", "store:\n  driver: redis\n  redis:\n    addrs: [redis.internal]\n", "store.redis.addrs[0]"},
		{"store.redis sentinel without addrs", "store:\n  driver: redis\n  redis:\n    url: redis://127.0.0.1:6379\n    master_name: mymaster\n", "store.redis.master_name"},
		{"store.redis sentinel and cluster", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:26379\"]\n    master_name: mymaster\n    cluster: true\n", "store.redis.master_name"},
		{"store.redis cluster db", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:7000\"]\n    cluster: true\n    db: 1\n", "store.redis.db"},
		{"store.redis read_timeout zero", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    read_timeout: -1s\n", "store.redis.read_timeout"},
		{"store.redis min_replicas negative", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    min_replicas: -1\n", "store.redis.min_replicas"},
		{"store.redis replica_timeout not below read_timeout", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    min_replicas: 1\n    replica_timeout: 2s\n", "store.redis.replica_timeout"},
		{"store.redis prefix with brace", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    prefix: \"a{b\"\n", "store.redis.prefix"},
		{"store.redis tls_ca_file missing", "store:\n  driver: redis\n  redis:\n    url: rediss://127.0.0.1:6379\n    tls_ca_file: /nonexistent/ca.pem\n", "store.redis.tls_ca_file"},
		{"store.redis cert without key", "store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    tls_cert_file: c.pem\n", "store.redis.tls_cert_file"},
		{"stream.max_topics too many for redis", "store:\n  driver: redis\n  redis:\n    url: redis://127.0.0.1:6379\nstream:\n  max_topics: 33\n", "stream.max_topics"},
		{"store.max_events_per_topic negative", "store:\n  max_events_per_topic: -1\n", "store.max_events_per_topic"},
		{"store.max_age negative", "store:\n  max_age: -1h\n", "store.max_age"},
		{"store.idempotency_window negative", "store:\n  idempotency_window: -1h\n", "store.idempotency_window"},
		{"stream.heartbeat negative", "stream:\n  heartbeat: -15s\n", "stream.heartbeat"},
		{"stream.retry negative", "stream:\n  retry: -3s\n", "stream.retry"},
		{"stream.write_timeout negative", "stream:\n  write_timeout: -1s\n", "stream.write_timeout"},
		{"stream.queue_bytes too small", "stream:\n  queue_bytes: 4095\n", "stream.queue_bytes"},
		{"stream.queue_bytes negative", "stream:\n  queue_bytes: -1\n", "stream.queue_bytes"},
		{"stream.max_topics negative", "stream:\n  max_topics: -1\n", "stream.max_topics"},
		{"stream.max_topics too many", "stream:\n  max_topics: 1025\n", "stream.max_topics"},
		{"poll.max_wait negative", "poll:\n  max_wait: -1s\n", "poll.max_wait"},
		{"poll.max_wait too long", "poll:\n  max_wait: 5m1s\n", "poll.max_wait"},
		{"poll.max_events negative", "poll:\n  max_events: -1\n", "poll.max_events"},
		{"poll.max_events too many", "poll:\n  max_events: 10001\n", "poll.max_events"},
		{"poll.retry negative", "poll:\n  retry: -1s\n", "poll.retry"},
		{"publish.max_body_bytes too small", "publish:\n  max_body_bytes: 1023\n  max_data_bytes: 100\n", "publish.max_body_bytes"},
		{"publish.max_data_bytes negative", "publish:\n  max_data_bytes: -1\n", "publish.max_data_bytes"},
		{"publish.max_data_bytes above body", "publish:\n  max_body_bytes: 2048\n  max_data_bytes: 2049\n", "publish.max_data_bytes"},
		{"auth.cookie with space", "auth:\n  cookie: a b\n", "auth.cookie"},
		{"auth.cookie with equals", "auth:\n  cookie: a=b\n", "auth.cookie"},
		{"auth.query_param with ampersand", "auth:\n  query_param: a&b\n", "auth.query_param"},
		{"auth.anonymous_subscribe empty topic", "auth:\n  anonymous_subscribe: [news, \"\"]\n", "auth.anonymous_subscribe[1]"},
		{"auth.anonymous_subscribe inner star", "auth:\n  anonymous_subscribe: [a*b]\n", "auth.anonymous_subscribe[0]"},
		{"auth.anonymous_subscribe two stars", "auth:\n  anonymous_subscribe: [\"a**\"]\n", "auth.anonymous_subscribe[0]"},
		{"auth.jwks_url plain http to a remote host", "auth:\n  jwks_url: http://idp.example/jwks.json\n", "auth.jwks_url"},
		{"auth.jwks_url plain http to a private address", "auth:\n  jwks_url: http://10.0.0.5:8080/jwks\n", "auth.jwks_url"},
		{"auth.jwks_url plain http to all interfaces", "auth:\n  jwks_url: http://0.0.0.0/jwks\n", "auth.jwks_url"},
		{"auth.jwks_url plain http to a name that starts with 127", "auth:\n  jwks_url: http://127.0.0.1.nip.io/jwks\n", "auth.jwks_url"},
		{"auth.jwks_url plain http with a password", "auth:\n  jwks_url: http://u:hunter2@idp.example/jwks\n", "auth.jwks_url"},
		{"auth.jwks_url unknown scheme", "auth:\n  jwks_url: ftp://idp.example/jwks\n", "auth.jwks_url"},
		{"auth.jwks_url https without host", "auth:\n  jwks_url: https:///jwks\n", "auth.jwks_url"},
		{"log.format unknown", "log:\n  format: xml\n", "log.format"},
		{"log.level unknown", "log:\n  level: trace\n", "log.level"},

		{"valid: defaults", "", ""},
		{"valid: listen on all interfaces", "listen: :8080\n", ""},
		{"valid: listen on IPv6", "listen: \"[::1]:8080\"\n", ""},
		{"valid: profile baseline, accept lenient", "profile: baseline\naccept: lenient\n", ""},
		{"valid: keep all history", "store:\n  max_events_per_topic: 0\n  max_age: 0s\n", ""},
		{"valid: memory store", "store:\n  driver: memory\n", ""},
		{"valid: redis url", "store:\n  driver: redis\n  redis:\n    url: redis://user:secret@127.0.0.1:6379/2?dial_timeout=1s\n", ""},
		{"valid: redis sentinel", "store:\n  driver: redis\n  redis:\n    addrs: [\"10.0.0.1:26379\", \"10.0.0.2:26379\"]\n    master_name: mymaster\n    min_replicas: 1\n", ""},
		{"valid: redis cluster", "store:\n  driver: redis\n  redis:\n    addrs: [\"10.0.0.1:7000\"]\n    cluster: true\n    tls: true\n", ""},
		{"valid: redis cluster url", "store:\n  driver: redis\n  redis:\n    url: redis://10.0.0.1:7000?addr=10.0.0.2:7000\n    cluster: true\n", ""},
		{"valid: redis keys unused by bolt", "store:\n  redis:\n    min_replicas: 2\n", ""},
		{"valid: bounds", "stream:\n  queue_bytes: 4096\n  max_topics: 1024\npoll:\n  max_wait: 5m\n  max_events: 10000\n", ""},
		{"valid: data as large as body", "publish:\n  max_body_bytes: 1024\n  max_data_bytes: 1024\n", ""},
		{"valid: no anonymous topics", "auth:\n  anonymous_subscribe: []\n", ""},
		{"valid: anonymous prefix", "auth:\n  anonymous_subscribe: [news, \"public.*\", \"*\"]\n", ""},
		{"valid: query param", "auth:\n  query_param: access_token\n", ""},
		{"valid: log", "log:\n  format: json\n  level: debug\n", ""},
		{"valid: jwks_url https", "auth:\n  jwks_url: https://idp.example/.well-known/jwks.json\n", ""},
		{"valid: jwks_url http on 127.0.0.1", "auth:\n  jwks_url: http://127.0.0.1:8081/jwks\n", ""},
		{"valid: jwks_url http on 127.0.0.0/8", "auth:\n  jwks_url: http://127.9.8.7/jwks\n", ""},
		{"valid: jwks_url http on ::1", "auth:\n  jwks_url: http://[::1]:8081/jwks\n", ""},
		{"valid: jwks_url http on localhost", "auth:\n  jwks_url: http://localhost:8081/jwks\n", ""},
		{"valid: jwks_url file path", "auth:\n  jwks_url: /etc/sseguard/jwks.json\n", ""},
		{"valid: jwks_url file URL", "auth:\n  jwks_url: file:///etc/sseguard/jwks.json\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			err = c.Validate()
			if tt.field == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted it, want an error on %s", tt.field)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Errorf("error %q does not start with %q", err, tt.field+": ")
			}
			fes := fieldErrorsOf(err)
			if len(fes) != 1 || fes[0].Field != tt.field {
				t.Errorf("got %d errors (%v), want one *FieldError on %s", len(fes), err, tt.field)
			}
		})
	}
}

// TestValidateJWKSURLHidesPassword checks that refusing a JWKS URL does
// not print the password it holds.
func TestValidateJWKSURLHidesPassword(t *testing.T) {
	for _, u := range []string{"http://u:hunter2@idp.example/jwks", "https://u:hunter2@idp.example:bad/jwks"} {
		c := Default()
		c.Auth.JWKSURL = u
		err := c.Validate()
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: err %v; want a refusal without the password", u, err)
		}
	}
}

// TestValidateReportsAll checks that one run names every bad field, each on
// its own line.
func TestValidateReportsAll(t *testing.T) {
	c, err := Parse([]byte(`
listen: nowhere
profile: loose
stream:
  heartbeat: -1s
  max_topics: 5000
auth:
  cookie: "bad cookie"
log:
  level: loud
`))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	want := []string{"listen", "profile", "stream.heartbeat", "stream.max_topics", "auth.cookie", "log.level"}
	var got []string
	for _, fe := range fieldErrorsOf(err) {
		got = append(got, fe.Field)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fields %q, want %q", got, want)
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]+": ") {
			t.Errorf("line %d is %q, want it to start with %q", i+1, l, want[i]+": ")
		}
	}
}

// TestValidateZero checks that a Config built by hand, without Parse or
// Default, is refused with field errors rather than a panic.
func TestValidateZero(t *testing.T) {
	err := (&Config{}).Validate()
	if err == nil {
		t.Fatal("zero Config accepted")
	}
	if fes := fieldErrorsOf(err); len(fes) == 0 || fes[0].Field != "listen" {
		t.Errorf("got %v", err)
	}
}

func TestFieldError(t *testing.T) {
	tests := []struct {
		err  FieldError
		want string
	}{
		{FieldError{Field: "stream.heartbeat", Problem: "must not be negative"}, "stream.heartbeat: must not be negative"},
		{FieldError{Field: "stream.x", Problem: "unknown key", Line: 3}, "line 3: stream.x: unknown key"},
		{FieldError{Problem: "want a mapping", Line: 1}, "line 1: want a mapping"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestDurationMarshal(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{1500 * time.Millisecond, "1.5s"},
		{10 * time.Second, "10s"},
		{time.Minute, "1m"},
		{90 * time.Second, "1m30s"},
		{90 * time.Minute, "1h30m"},
		{24 * time.Hour, "24h"},
		{time.Hour + time.Second, "1h0m1s"},
		{-time.Minute, "-1m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			v, err := Duration(tt.d).MarshalYAML()
			if err != nil || v != tt.want {
				t.Fatalf("MarshalYAML = %v, %v; want %q", v, err, tt.want)
			}
			back, err := time.ParseDuration(tt.want)
			if err != nil || back != tt.d {
				t.Errorf("%q parses back as %v, %v", tt.want, back, err)
			}
		})
	}
}

func TestProfileFor(t *testing.T) {
	const tlsOn = "tls:\n  cert_file: hub.pem\n  key_file: hub.key\n"
	tests := []struct {
		name, yaml string
		base       *policy.Profile
		accept     policy.AcceptMode
		hsts       string // on every kind; "" for none
	}{
		{"default", "", policy.Strict, policy.Strict.Accept, ""},
		{"baseline", "profile: baseline\n", policy.Baseline, policy.Baseline.Accept, ""},
		{"strict, lenient accept", "accept: lenient\n", policy.Strict, policy.AcceptLenient, ""},
		{"baseline, strict accept", "profile: baseline\naccept: strict\n", policy.Baseline, policy.AcceptStrict, ""},
		{"TLS sends HSTS by default", tlsOn, policy.Strict, policy.Strict.Accept, policy.DefaultHSTS},
		{"TLS with hsts off", tlsOn + "  hsts: \"off\"\n", policy.Strict, policy.Strict.Accept, ""},
		{"baseline, TLS with its own hsts", "profile: baseline\n" + tlsOn + "  hsts: max-age=63072000; includeSubDomains\n", policy.Baseline, policy.Baseline.Accept, "max-age=63072000; includeSubDomains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.TLS.Validate("tls"); err != nil {
				t.Fatal(err)
			}
			p := c.Policy.ProfileFor(c.TLS, c.CORS)
			if p == tt.base {
				t.Error("ProfileFor returned the shared profile, not a copy")
			}
			if p.Accept != tt.accept {
				t.Errorf("Accept = %v, want %v", p.Accept, tt.accept)
			}
			want := tt.base.Clone()
			want.Accept = tt.accept
			want.SetHSTS(tt.hsts)
			if !reflect.DeepEqual(p, want) {
				t.Errorf("profile differs from %s with Accept %v and HSTS %q", c.Profile, tt.accept, tt.hsts)
			}
			for _, k := range []policy.Kind{policy.KindStream, policy.KindJSON, policy.KindProblem, policy.KindPage} {
				h, ok := p.Header(k, policy.HSTSHeader)
				if ok != (tt.hsts != "") || h.Value != tt.hsts {
					t.Errorf("%v responses: HSTS %q (present %v), want %q", k, h.Value, ok, tt.hsts)
				}
			}
		})
	}
}

func TestHSTSNeedsTLSAndAValidValue(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"tls:\n  hsts: max-age=31536000\n", "tls.hsts: needs tls.cert_file"},
		{"tls:\n  cert_file: a\n  key_file: b\n  hsts: max-age=1y\n", `tls.hsts: max-age "1y" is not a number of seconds`},
		{"tls:\n  cert_file: a\n  key_file: b\n  hsts: includeSubDomains\n", "tls.hsts: no max-age directive"},
		{"tls:\n  cert_file: a\n  key_file: b\n  hsts: max-age=1; max-age=2\n", "tls.hsts: directive max-age appears twice"},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		err = c.TLS.Validate("tls")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

func TestSecretPath(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"default", "", "./sseguard-data/secret.key"},
		{"in data", "data: /var/lib/sseguard/\n", "/var/lib/sseguard/secret.key"},
		{"explicit", "data: /var/lib/sseguard\nauth:\n  secret_file: /run/secrets/sseguard\n", "/run/secrets/sseguard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.SecretPath(); got != tt.want {
				t.Errorf("SecretPath() = %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzParse checks that no input makes Parse or Validate panic, that every
// decoding failure names a line, and that what Parse accepts survives a
// round trip through YAML.
func FuzzParse(f *testing.F) {
	for _, file := range []string{"testdata/full.yaml", "testdata/production.yaml"} {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("stream:\n  heartbeat: 5\n  hearbeat: x\n"))
	f.Add([]byte("auth:\n  anonymous_subscribe: [a, {b: 1}]\n"))
	f.Add([]byte("store: {max_age: 0s, max_events_per_topic: 0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			for _, fe := range fieldErrorsOf(err) {
				if fe.Line == 0 {
					t.Errorf("%v: no line", fe)
				}
			}
			return
		}
		_ = c.Validate()
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(c)): %v\n%s", err, out)
		}
		if !reflect.DeepEqual(c, back) {
			t.Errorf("round trip changed the configuration:\n%s\nto\n%s", out, render(t, back))
		}
	})
}

// fieldErrorsOf returns the *FieldError values in err, in order.
func fieldErrorsOf(err error) []*FieldError {
	var fes []*FieldError
	eachFieldError(err, func(fe *FieldError) { fes = append(fes, fe) })
	return fes
}

func render(t testing.TB, c *Config) string {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// key is one key of the file: its dotted path and its value in a Config.
type key struct {
	path  string
	value reflect.Value
}

// keys lists every key of Config with its default value, walking the yaml
// tags: "listen", ..., "stream.heartbeat", ...
func keys(t testing.TB) []key {
	t.Helper()
	var out []key
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fv := reflect.Indirect(v.Field(i))
			if opts == "inline" {
				walk(fv, prefix)
				continue
			}
			if tag == "" || tag == "-" {
				t.Fatalf("%s has no yaml tag", f.Name)
			}
			path := prefix + tag
			if fv.Kind() == reflect.Struct {
				walk(fv, path+".")
				continue
			}
			out = append(out, key{path, fv})
		}
	}
	walk(reflect.ValueOf(Default()).Elem(), "")
	return out
}

// TestStoreRetention: the store section as the stores take it, an
// explicit 0 meaning "keep all" as in the file.
func TestStoreRetention(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       store.Retention
	}{
		{"defaults", "", store.Retention{MaxEventsPerTopic: 10000, MaxAge: 24 * time.Hour, IdempotencyWindow: 24 * time.Hour}},
		{"keep all", "store:\n  max_events_per_topic: 0\n  max_age: 0s\n", store.Retention{IdempotencyWindow: 24 * time.Hour}},
		{"set", "store:\n  max_events_per_topic: 5\n  max_age: 1h\n  idempotency_window: 2m\n", store.Retention{MaxEventsPerTopic: 5, MaxAge: time.Hour, IdempotencyWindow: 2 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Store.Retention(); got != tt.want {
				t.Errorf("Retention() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
