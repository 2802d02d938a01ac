package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/httpserve/certtest"
)

// TestRefhubStopsWithItsStreams runs the reference hub with a stream
// open, ends its context, and checks that the command returns 0 at once
// (streams end with the context) and that the stream ended; TestMain then
// finds no goroutine left.
func TestRefhubStopsWithItsStreams(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"refhub", "--listen", "127.0.0.1:0"}, strings.NewReader(""), stdout, stderr)
	}()
	addrRE := regexp.MustCompile(`listening on http://(\S+)`)
	stdout.waitFor(t, exited, "listening line", addrRE.MatchString)
	addr := addrRE.FindStringSubmatch(stdout.String())[1]

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("GET /events?topic=t HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	if l, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(l, "HTTP/1.1 200") {
		t.Fatalf("stream: %q %v", l, err)
	}
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("refhub exited %d:\n%s", code, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("refhub did not stop within 20 s of its context ending")
	}
	for {
		if _, err := br.ReadString('\n'); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("the stream did not end: %v", err)
			}
			break
		}
	}
}

// TestRefhubOverTLS: with --tls-cert and --tls-key the reference hub
// serves its streams over HTTPS, the reference for measuring sseguard's
// TLS streams; one flag without the other is a usage error.
func TestRefhubOverTLS(t *testing.T) {
	ca := certtest.NewCA(t)
	cert, key := ca.Issue(t, certtest.Leaf{CN: "refhub", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	certFile, keyFile := certtest.WriteFile(t, "refhub.pem", cert), certtest.WriteFile(t, "refhub.key", key)
	if code, _, errOut := runCLI(t, "refhub", "--listen", "127.0.0.1:0", "--tls-cert", certFile); code != exitUsage || !strings.Contains(errOut, "go together") {
		t.Errorf("--tls-cert alone: exit %d, %q", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	exited := make(chan int, 1)
	go func() {
		exited <- Run(ctx, []string{"refhub", "--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile}, strings.NewReader(""), stdout, stderr)
	}()
	addrRE := regexp.MustCompile(`listening on (https://\S+)`)
	stdout.waitFor(t, exited, "listening line", addrRE.MatchString)
	base := addrRE.FindStringSubmatch(stdout.String())[1]
	reqCtx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	req, _ := http.NewRequestWithContext(reqCtx, "GET", base+"/events?topic=t", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := ca.Client(t, nil).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.TLS == nil || res.Header.Get("Content-Type") == "" {
		t.Fatalf("stream over TLS: %d, TLS %v, headers %v", res.StatusCode, res.TLS != nil, res.Header)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("refhub exited %d:\n%s", code, stderr)
	}
}
