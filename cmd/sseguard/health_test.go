package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		args   []string
		status int
		code   int
	}{
		{"alive", []string{srv.URL + "/healthz"}, http.StatusOK, exitOK},
		{"failing", []string{srv.URL + "/healthz"}, http.StatusServiceUnavailable, exitError},
		{"wrong path", []string{srv.URL + "/nope"}, http.StatusOK, exitError},
		{"not a URL", []string{"127.0.0.1:1/healthz"}, http.StatusOK, exitUsage},
		{"two URLs", []string{srv.URL, srv.URL}, http.StatusOK, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), append([]string{"health"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, &stdout, &stderr)
			}
		})
	}
}
