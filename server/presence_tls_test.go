package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// TestPresenceOverHTTP2: streams that cannot be parked (HTTP/2) get their
// presence events too, with comment heartbeats and with heartbeat
// events; a client certificate's connection is counted and its name is
// never listed.
func TestPresenceOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	srvCert, srvKey := ca.issue(t, "hub", nil, nil, []net.IP{net.ParseIP("127.0.0.1")}, false)
	feedCert, feedKey := ca.issue(t, "feed", []string{"spiffe://test/svc/feed"}, nil, nil, true)
	cfg := config.Default()
	cfg.Stream.Heartbeat = config.Duration(time.Hour)
	cfg.TLS.CertFile = writeFile(t, dir, "srv.pem", srvCert)
	cfg.TLS.KeyFile = writeFile(t, dir, "srv-key.pem", srvKey)
	cfg.TLS.ClientCAFile = writeFile(t, dir, "ca.pem", ca.pem)
	cfg.Auth.ClientCerts = []config.CertRule{{Principal: "spiffe://test/svc/feed", Subscribe: []string{"chat/*"}}}
	withPresence("chat/*")(cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := TLSConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, stop, err := NewVerifier(context.Background(), cfg, testKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	h := hub.New(hub.Options{Store: memory.New(store.Retention{})})
	srv := New(cfg, h, v, slog.New(slog.DiscardHandler))
	srv.TLS = tc
	addr, _ := runLoopback(t, srv)
	base := "https://" + addr

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	client := func(certs ...tls.Certificate) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	plainClient := client()
	open := func(c *http.Client, tok, query string) *sse.Parser {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/events?"+query, nil)
		req.Header.Set("Accept", "text/event-stream")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		if res.StatusCode != 200 || res.ProtoMajor != 2 {
			t.Fatalf("GET /events?%s: %d over HTTP/%d", query, res.StatusCode, res.ProtoMajor)
		}
		return sse.NewParser(res.Body)
	}
	watcher := mintFor(t, testKey, "zed", watcherPerms)
	comments := open(plainClient, watcher, "topic=chat/1&presence=1")
	wantEvent(t, nextSSEPresence(t, comments), PresenceJoinEvent, "chat/1", 1, sub("zed"))
	beats := open(plainClient, mintFor(t, testKey, "carol", watcherPerms), "topic=chat/1&presence=1&heartbeat=event")
	wantEvent(t, nextSSEPresence(t, comments), PresenceJoinEvent, "chat/1", 2, sub("carol"))
	wantEvent(t, nextSSEPresence(t, beats), PresenceJoinEvent, "chat/1", 2, sub("carol"))

	pair, err := tls.X509KeyPair(feedCert, feedKey)
	if err != nil {
		t.Fatal(err)
	}
	open(client(pair), "", "topic=chat/1")
	wantEvent(t, nextSSEPresence(t, comments), PresenceJoinEvent, "chat/1", 3, nil)
	wantEvent(t, nextSSEPresence(t, beats), PresenceJoinEvent, "chat/1", 3, nil)
	req, _ := http.NewRequest("GET", base+"/api/presence?topic=chat/1", nil)
	req.Header.Set("Authorization", "Bearer "+watcher)
	res, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var ans presenceAnswer
	err = json.NewDecoder(res.Body).Decode(&ans)
	if err != nil || ans.Count != 3 || len(ans.Subjects) != 2 || ans.Subjects[0] != "carol" || ans.Subjects[1] != "zed" {
		t.Fatalf("presence %+v (%v), want 3 connections and carol, zed: never the certificate's name", ans, err)
	}
}
