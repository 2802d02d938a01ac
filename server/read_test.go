package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
)

// TestReadRefusalsAgree: the stream and the poll fallback decide who may
// read what in one place (authorizeRead), so every refusal is the same on
// both; only the stream's points to the fallback.
func TestReadRefusalsAgree(t *testing.T) {
	ts := start(t, nil, nil)
	newsOnly := token(t, auth.Permissions{Subscribe: []string{"news"}}, time.Hour)
	expired, err := auth.Mint(testKey, "x", allPerms, time.Hour, time.Now().Add(-2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		query  string
		hdr    http.Header
		status int
		code   string
	}{
		{"no topic", "", nil, http.StatusBadRequest, policy.CodeBadRequest},
		{"star inside a topic", "topic=a*b", nil, http.StatusBadRequest, policy.CodeBadRequest},
		{"protected topic without a token", "topic=news", nil, http.StatusUnauthorized, policy.CodeTokenMissing},
		{"topic the token may not read", "topic=news&topic=sport", http.Header{"Authorization": {"Bearer " + newsOnly}},
			http.StatusForbidden, policy.CodeTopicForbidden},
		{"expired token", "topic=news", http.Header{"Authorization": {"Bearer " + expired}}, http.StatusUnauthorized, policy.CodeTokenExpired},
		{"foreign origin", "topic=demo", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, policy.CodeOriginForbidden},
	}
	endpoints := []struct {
		path, accept string
		fallback     bool // topic problems name the fallback
	}{
		{"/events", "text/event-stream", true},
		{"/api/poll", "application/json", false},
	}
	for _, tt := range tests {
		for _, ep := range endpoints {
			t.Run(tt.name+ep.path, func(t *testing.T) {
				hdr := tt.hdr.Clone()
				if hdr == nil {
					hdr = http.Header{}
				}
				hdr.Set("Accept", ep.accept)
				res := doReq(t, "GET", ts.base+ep.path+"?"+tt.query, hdr, "")
				var p struct {
					Status          int
					Error, Fallback string
				}
				if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
					t.Fatalf("status %d, not a problem: %v", res.StatusCode, err)
				}
				if res.StatusCode != tt.status || p.Status != tt.status || p.Error != tt.code {
					t.Fatalf("%d %q, want %d %q", res.StatusCode, p.Error, tt.status, tt.code)
				}
				if tt.status == http.StatusUnauthorized && tt.code == policy.CodeTokenMissing && res.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				topicProblem := tt.status == http.StatusBadRequest
				if wantFallback := topicProblem && ep.fallback; (p.Fallback != "") != wantFallback {
					t.Errorf("fallback %q; want one: %v", p.Fallback, wantFallback)
				}
			})
		}
	}
}
