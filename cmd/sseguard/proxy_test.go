package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProxyUsage(t *testing.T) {
	t.Setenv("SSEGUARD_PROXY_UPSTREAM", "")
	t.Setenv("SSEGUARD_PROXY_CONFIG", "")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"help", []string{"proxy", "--help"}, 0, "-upstream", ""},
		{"no upstream", []string{"proxy"}, 2, "", "hint: sseguard proxy --upstream http://127.0.0.1:3000"},
		{"bad upstream", []string{"proxy", "--upstream", "127.0.0.1:3000"}, 1, "", "upstream: \"127.0.0.1:3000\": want an absolute http or https URL"},
		{"stray arg", []string{"proxy", "--upstream", "http://127.0.0.1:1", "extra"}, 2, "", "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errOut, tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", code, out, errOut, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

func TestProxyConfigPrecedence(t *testing.T) {
	file := writeConfigFile(t, "proxy.yaml", "upstream: http://file.invalid:1\nlisten: 127.0.0.1:1\n")
	env := environWith(map[string]string{
		"SSEGUARD_PROXY_CONFIG":   file,
		"SSEGUARD_PROXY_UPSTREAM": "http://env.invalid:2",
	})
	cfg, err := loadProxyConfig(env, "", "", "127.0.0.1:3", "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Upstream != "http://env.invalid:2" || cfg.Listen != "127.0.0.1:3" || cfg.Routes[0].Upstream != "http://env.invalid:2" {
		t.Errorf("upstream %q, listen %q, route upstream %q: want env over file, flag over env", cfg.Upstream, cfg.Listen, cfg.Routes[0].Upstream)
	}
	if _, err := loadProxyConfig(environWith(nil), writeConfigFile(t, "bad.yaml", "upstream: http://a\nheartbeet: 1s\n"), "", "", ""); err == nil ||
		!strings.Contains(err.Error(), "heartbeet") {
		t.Errorf("unknown key: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and many readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProxyCommand runs "sseguard proxy" in front of a naive backend, as
// the README shows, and reads the stream through it off the wire.
func TestProxyCommand(t *testing.T) {
	naive := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Connection", "keep-alive")
		w.Header().Set("X-Powered-By", "Express")
		_, _ = io.WriteString(w, "data: hello\n\n")
	}))
	defer naive.Close()
	t.Setenv("SSEGUARD_PROXY_CONFIG", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"proxy", "--upstream", naive.URL, "--listen", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
	}()
	addrRE := regexp.MustCompile(`listening on http://(\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("exited %d early: %s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line; stdout %q stderr %q", stdout.String(), stderr.String())
		}
	}
	head, body, err := rawStream(addr, "/events")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Content-Type: text/event-stream; charset=utf-8\r\n",
		"Cache-Control: no-cache, no-store, no-transform\r\n",
		"X-Content-Type-Options: nosniff\r\n",
		"X-Accel-Buffering: no\r\n",
	} {
		if strings.Count(head, want) != 1 {
			t.Errorf("head lacks exactly one %q:\n%s", want, head)
		}
	}
	if strings.Contains(head, "X-Powered-By") || body != "data: hello\n\n" {
		t.Errorf("head:\n%s\nbody %q", head, body)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("proxy did not stop")
	}
	if !strings.Contains(stderr.String(), `"msg":"header drift"`) {
		t.Errorf("no drift log line on stderr:\n%s", stderr.String())
	}
}

// rawStream GETs path as EventSource does over HTTP/1.1 with Connection:
// close and returns the response head and the de-chunked body.
func rawStream(addr, path string) (head, body string, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n", path, addr)
	br := bufio.NewReader(conn)
	var h strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		h.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	res, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(h.String()), br)), nil)
	if err != nil {
		return "", "", err
	}
	b, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", err
	}
	return h.String(), string(b), nil
}
