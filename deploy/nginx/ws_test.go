package nginx_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/server/servertest"
	"github.com/sseguard/sseguard/store"
)

// TestNginxPassesWebSocket: sseguard.conf passes the /ws upgrade with the
// Host and scheme the browser used, so a socket from a page served
// through nginx is same-origin to the hub and gets events; a socket from
// another origin is still refused before the upgrade, with the hub's 403.
func TestNginxPassesWebSocket(t *testing.T) {
	shipped, err := config.Load("sseguard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hub := servertest.Start(t, shipped)
	base := startNginx(t, "sseguard.conf", hub.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws?topic=demo"

	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		t.Fatalf("a same-origin socket through nginx: %v", err)
	}
	defer c.CloseNow()
	if _, err := hub.Hub.Publish(ctx, store.Record{Topic: "demo", Data: "through nginx"}); err != nil {
		t.Fatal(err)
	}
	_, msg, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ev struct{ ID, Topic, Data string }
	if err := json.Unmarshal(msg, &ev); err != nil || ev.Topic != "demo" || ev.Data != "through nginx" || ev.ID == "" {
		t.Fatalf("message %s (%v), want the published event", msg, err)
	}

	_, res, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil {
		t.Fatal("a socket from another origin was upgraded through nginx")
	}
	defer res.Body.Close()
	var prob struct{ Error string }
	if res.StatusCode != 403 || json.NewDecoder(res.Body).Decode(&prob) != nil || prob.Error != "origin_forbidden" {
		t.Fatalf("another origin: %d %q, want 403 origin_forbidden", res.StatusCode, prob.Error)
	}
}
