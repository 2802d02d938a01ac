package config

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/internal/redistest"
)

// TestRedisOptions: go-redis's options from the section, the URL's values
// first and the section's keys for the rest, retries off.
func TestRedisOptions(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c *Config)
	}{
		{"url", "url: redis://app:s3cret@10.0.0.1:6380/3?read_timeout=5s\nmin_replicas: 1\n", func(t *testing.T, c *Config) {
			o, err := c.Store.Redis.Options()
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Addrs) != 1 || o.Addrs[0] != "10.0.0.1:6380" || o.Username != "app" || o.Password != "s3cret" || o.DB != 3 {
				t.Errorf("options %+v, want the URL's address, login and db", o)
			}
			if o.ReadTimeout != 5*time.Second || o.WriteTimeout != 2*time.Second || o.DialTimeout != 2*time.Second {
				t.Errorf("timeouts read %v write %v dial %v, want the URL's 5s and the defaults 2s", o.ReadTimeout, o.WriteTimeout, o.DialTimeout)
			}
			if o.MaxRetries != -1 || !o.ContextTimeoutEnabled || o.IsClusterMode || o.TLSConfig != nil {
				t.Errorf("MaxRetries %d ContextTimeoutEnabled %v cluster %v TLS %v", o.MaxRetries, o.ContextTimeoutEnabled, o.IsClusterMode, o.TLSConfig)
			}
		}},
		{"rediss url", "url: rediss://10.0.0.1:6380\ntls_server_name: redis.internal\n", func(t *testing.T, c *Config) {
			o, err := c.Store.Redis.Options()
			if err != nil {
				t.Fatal(err)
			}
			if o.TLSConfig == nil || o.TLSConfig.ServerName != "redis.internal" {
				t.Errorf("TLS %+v, want on with the server name", o.TLSConfig)
			}
		}},
		{"cluster addrs", "addrs: [\"10.0.0.1:7000\", \"10.0.0.2:7000\"]\ncluster: true\npassword: pw\ntls: true\n", func(t *testing.T, c *Config) {
			o, err := c.Store.Redis.Options()
			if err != nil {
				t.Fatal(err)
			}
			if !o.IsClusterMode || len(o.Addrs) != 2 || o.Password != "pw" || o.TLSConfig == nil {
				t.Errorf("options %+v, want a cluster of 2 seeds with the password and TLS", o)
			}
		}},
		{"sentinel", "addrs: [\"10.0.0.1:26379\"]\nmaster_name: mymaster\nsentinel_password: spw\n", func(t *testing.T, c *Config) {
			o, err := c.Store.Redis.Options()
			if err != nil {
				t.Fatal(err)
			}
			if o.MasterName != "mymaster" || o.SentinelPassword != "spw" {
				t.Errorf("options %+v, want Sentinel mymaster", o)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "store:\n  driver: redis\n  redis:\n" + indent(tt.yaml, "    ")
			c, err := Parse([]byte(yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			tt.check(t, c)
		})
	}
}

// TestRedisURLErrorHidesPassword: config check names the bad URL's
// problem without printing the password in it.
func TestRedisURLErrorHidesPassword(t *testing.T) {
	c, err := Parse([]byte("store:\n  driver: redis\n  redis:\n    url: redis://app:hunter2@10.0.0.1:port/x\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "store.redis.url") {
		t.Fatalf("Validate: %v, want an error on store.redis.url", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

// TestRedisUnixSocket: a unix:// URL reaches Redis over its socket.
func TestRedisUnixSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	redistest.Start(t, redistest.Options{Config: []string{"unixsocket " + sock, "unixsocketperm 700"}})
	c, err := Parse([]byte("store:\n  driver: redis\n  redis:\n    url: unix://" + sock + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o, err := c.Store.Redis.Options()
	if err != nil {
		t.Fatal(err)
	}
	client := goredis.NewUniversalClient(o)
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Errorf("PING over %s: %v", sock, err)
	}
}

// TestRedisPatternPrefixes: store.redis.pattern_prefixes is read from the
// file and its environment variable, and a prefix that could not serve a
// pattern is refused with the key's name.
func TestRedisPatternPrefixes(t *testing.T) {
	c, err := Parse([]byte("store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    pattern_prefixes: [\"orders/\", \"\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := c.Store.Redis.PatternPrefixes; len(got) != 2 || got[0] != "orders/" || got[1] != "" {
		t.Errorf("pattern_prefixes = %q, want [orders/ \"\"]", got)
	}
	env := map[string]string{"SSEGUARD_STORE_REDIS_PATTERN_PREFIXES": "[chat/, news/]"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if got := c.Store.Redis.PatternPrefixes; len(got) != 2 || got[0] != "chat/" || got[1] != "news/" {
		t.Errorf("pattern_prefixes from the environment = %q, want [chat/ news/]", got)
	}
	for _, bad := range []string{`["orders/*"]`, `["sseguard:x"]`, `["a b"]`, `["a/", "a/"]`,
		`["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q"]`} {
		c, err := Parse([]byte("store:\n  driver: redis\n  redis:\n    addrs: [\"127.0.0.1:6379\"]\n    pattern_prefixes: " + bad + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "store.redis.pattern_prefixes") {
			t.Errorf("pattern_prefixes: %s: Validate = %v, want an error naming the key", bad, err)
		}
	}
}
