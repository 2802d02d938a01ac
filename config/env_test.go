package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeysAreTheFilesKeys: Keys lists exactly the keys that full.yaml and
// the docs list (the test's own walk of Config).
func TestKeysAreTheFilesKeys(t *testing.T) {
	var want []string
	for _, k := range keys(t) {
		want = append(want, k.path)
	}
	if got := Keys(); !slices.Equal(got, want) {
		t.Errorf("Keys() = %q\nwant %q", got, want)
	}
}

// TestApplyEnv: every key can be set from its environment variable, with
// the file's syntax, over the file's value; empty variables change nothing.
func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"SSEGUARD_STORE_DRIVER":               "redis",
		"SSEGUARD_STORE_REDIS_URL":            "redis://user:p%40ss@127.0.0.1:6380/1",
		"SSEGUARD_STORE_REDIS_PASSWORD":       "12345", // a string key stays a string
		"SSEGUARD_STORE_REDIS_MIN_REPLICAS":   "2",
		"SSEGUARD_STORE_REDIS_CLUSTER":        "false",
		"SSEGUARD_STORE_REDIS_READ_TIMEOUT":   "3s",
		"SSEGUARD_STORE_MAX_EVENTS_PER_TOPIC": "0",
		"SSEGUARD_AUTH_ANONYMOUS_SUBSCRIBE":   "[news, \"public.*\"]",
		"SSEGUARD_LISTEN":                     "",
		"SSEGUARD_STREAM_HEARTBEAT":           "20s",
	}
	c, err := Parse([]byte("listen: 127.0.0.1:9000\nstream:\n  heartbeat: 5s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatalf("ApplyEnv: %v", err)
	}
	r := c.Store.Redis
	checks := []struct {
		name      string
		got, want any
	}{
		{"store.driver", c.Store.Driver, "redis"},
		{"store.redis.url", r.URL, env["SSEGUARD_STORE_REDIS_URL"]},
		{"store.redis.password", r.Password, "12345"},
		{"store.redis.min_replicas", r.MinReplicas, 2},
		{"store.redis.read_timeout", r.ReadTimeout.D(), 3 * time.Second},
		{"store.redis.write_timeout (default kept)", r.WriteTimeout.D(), 2 * time.Second},
		{"store.max_events_per_topic", *c.Store.MaxEventsPerTopic, 0},
		{"auth.anonymous_subscribe", strings.Join(*c.Auth.AnonymousSubscribe, ","), "news,public.*"},
		{"listen (empty variable)", c.Listen, "127.0.0.1:9000"},
		{"stream.heartbeat (over the file)", c.Stream.Heartbeat.D(), 20 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestApplyEnvErrors name the variable and the key, and never echo the
// value of a string key.
func TestApplyEnvErrors(t *testing.T) {
	env := map[string]string{
		"SSEGUARD_STORE_REDIS_MIN_REPLICAS": "many",
		"SSEGUARD_STREAM_HEARTBEAT":         "forever",
	}
	c := Default()
	err := c.ApplyEnv(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("ApplyEnv with bad values: no error")
	}
	for _, want := range []string{
		"store.redis.min_replicas: from SSEGUARD_STORE_REDIS_MIN_REPLICAS: want an integer",
		"stream.heartbeat: from SSEGUARD_STREAM_HEARTBEAT: want a duration",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %v is not a *FieldError", err)
	}
	if err := c.Set("store.redis.nope", "x"); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Errorf("Set of an unknown key: %v", err)
	}
}
