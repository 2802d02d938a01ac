package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
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
