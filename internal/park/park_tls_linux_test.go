//go:build linux

package park

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testCertOnce sync.Once
	testCert     tls.Certificate
	testPool     *x509.CertPool
	testCertErr  error
)

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	testCertOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			testCertErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "park test"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			testCertErr = err
			return
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			testCertErr = err
			return
		}
		testCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		testPool = x509.NewCertPool()
		testPool.AddCert(leaf)
	})
	if testCertErr != nil {
		t.Fatal(testCertErr)
	}
	return testCert, testPool
}

// parkedTLS is parkedSource over TLS: the server side is a *tls.Conn whose
// handshake is done and whose response head it wrote, as net/http's is
// when a handler hijacks it.
func parkedTLS(t *testing.T, opts Options, src Source) (*Poller, *bufio.Reader, *tls.Conn) {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(nil) })
	body, client := parkTLSOn(t, p, src)
	return p, body, client
}

// parkTLSOn parks one TLS stream of src on p.
func parkTLSOn(t *testing.T, p *Poller, src Source) (*bufio.Reader, *tls.Conn) {
	t.Helper()
	cert, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	client := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	t.Cleanup(func() { client.Close() })
	_ = client.SetDeadline(time.Now().Add(20 * time.Second))
	srvRaw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	srv := tls.Server(srvRaw, &tls.Config{Certificates: []tls.Certificate{cert}})
	hs := make(chan error, 1)
	go func() { hs <- client.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
	if _, err := io.WriteString(srv, head); err != nil {
		t.Fatal(err)
	}
	if err := p.Park(srv, src, true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(client)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(res.Body), client
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// onlyConn returns p's one parked stream.
func onlyConn(t *testing.T, p *Poller) *Conn {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		return c
	}
	t.Fatal("no stream parked")
	return nil
}

// A TLS stream is parked like a plain one: events arrive in order,
// encrypted, and once they are written no goroutine of the stream is
// left (writing goes back to false).
func TestTLSParkedStreamDeliversInOrder(t *testing.T) {
	src := newSource()
	p, body, _ := parkedTLS(t, Options{Heartbeat: time.Hour}, src)
	c := onlyConn(t, p)
	for round := 0; round < 3; round++ {
		for i := 0; i < 50; i++ {
			src.push("data: " + strings.Repeat("x", i) + "\n\n")
		}
		for i := 0; i < 50; i++ {
			if got, want := readLine(t, body), "data: "+strings.Repeat("x", i)+"\n"; got != want {
				t.Fatalf("round %d line %d = %q, want %q", round, i, got, want)
			}
			if got := readLine(t, body); got != "\n" {
				t.Fatalf("blank line %d = %q", i, got)
			}
		}
		waitFor(t, "the TLS stream's writer did not end once idle", func() bool { return !c.writing.Load() })
	}
}

func TestTLSParkedStreamHeartbeat(t *testing.T) {
	_, body, _ := parkedTLS(t, Options{Heartbeat: 20 * time.Millisecond}, newSource())
	for i := 0; i < 3; i++ {
		if got := readLine(t, body); got != ": keep-alive\n" {
			t.Fatalf("heartbeat line %q", got)
		}
		readLine(t, body)
	}
}

// A cut ends the TLS stream with the jittered retry and the last chunk,
// then close_notify: the client reads a clean end, not a truncation.
func TestTLSCutStreamEndsWithRetry(t *testing.T) {
	src := newSource()
	_, body, _ := parkedTLS(t, Options{Heartbeat: time.Hour}, src)
	src.push("data: a\n\n")
	src.cutOff()
	rest, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("body did not end cleanly: %v", err)
	}
	hint, ok := strings.CutPrefix(string(rest), "data: a\n\nretry: ")
	ms, err := strconv.Atoi(strings.TrimSuffix(hint, "\n\n"))
	if !ok || !strings.HasSuffix(hint, "\n\n") || err != nil || ms < 500 || ms >= 1500 {
		t.Fatalf("body %q, want the event and a retry of 500-1499 ms", rest)
	}
	select {
	case <-src.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("source not closed after the cut")
	}
}

func TestTLSClientLeavingClosesSource(t *testing.T) {
	src := newSource()
	p, _, client := parkedTLS(t, Options{Heartbeat: time.Hour}, src)
	client.Close()
	select {
	case <-src.closed:
	case <-time.After(10 * time.Second):
		t.Fatal("source not closed after the client left")
	}
	waitFor(t, "the stream is still parked", func() bool { return p.Len() == 0 })
}

func TestTLSCloseWritesFinal(t *testing.T) {
	src := newSource()
	p, body, _ := parkedTLS(t, Options{Heartbeat: time.Hour}, src)
	src.push("data: a\n\n")
	if got := readLine(t, body); got != "data: a\n" {
		t.Fatalf("got %q", got)
	}
	readLine(t, body)
	p.Close(func() []byte { return []byte("retry: 2000\n\n") })
	rest, err := io.ReadAll(body)
	if err != nil || string(rest) != "retry: 2000\n\n" {
		t.Fatalf("after Close: %q, %v", rest, err)
	}
}

// A TLS client that stops reading is cut off by the write timeout, as a
// plain one is, and its blocked writer goroutine ends with it.
func TestTLSStuckReaderIsClosed(t *testing.T) {
	src := newSource()
	p, _, _ := parkedTLS(t, Options{Heartbeat: time.Hour, WriteTimeout: 100 * time.Millisecond}, src)
	c := onlyConn(t, p)
	big := "data: " + strings.Repeat("z", 64<<10) + "\n\n"
	for i := 0; i < 300; i++ { // ~20 MB: the socket buffers fill
		src.push(big)
	}
	select {
	case <-src.closed:
	case <-time.After(20 * time.Second):
		t.Fatal("a TLS client that stopped reading is still parked after 20 s")
	}
	waitFor(t, "the stream is still parked", func() bool { return p.Len() == 0 })
	waitFor(t, "the stuck stream's writer did not end", func() bool { return !c.writing.Load() })
}

// Close does not wait a write timeout for a TLS client that stopped
// reading: the final writes of every TLS stream share one short deadline.
// And it returns only once the stream's writer has ended and closed the
// stream (a writer still closing it after Close returned was a race).
func TestTLSCloseIsBoundedWithStuckReader(t *testing.T) {
	src := newSource()
	p, _, _ := parkedTLS(t, Options{Heartbeat: time.Hour, WriteTimeout: time.Hour}, src)
	c := onlyConn(t, p)
	big := "data: " + strings.Repeat("z", 64<<10) + "\n\n"
	for i := 0; i < 300; i++ {
		src.push(big)
	}
	// The writer is blocked in a write: the socket is full.
	waitFor(t, "the writer never blocked", func() bool {
		if !c.wmu.TryLock() {
			return true
		}
		c.wmu.Unlock()
		return false
	})
	done := make(chan struct{})
	go func() { p.Close(nil); close(done) }()
	select {
	case <-done:
	case <-time.After(closeWrite + 10*time.Second):
		t.Fatal("Close waited for the hour-long write timeout of a stuck TLS stream")
	}
	// Close returned: the stream's writer has ended and closed it.
	if c.writing.Load() {
		t.Fatal("a TLS flush goroutine outlived Close")
	}
	select {
	case <-src.closed:
	default:
		t.Fatal("source not closed by Close")
	}
}

// Many events pushed from many goroutines while the stream writes: every
// one arrives once, and the writer goroutines do not pile up (at most one
// per stream).
func TestTLSConcurrentPushesDeliverAll(t *testing.T) {
	src := newSource()
	p, body, _ := parkedTLS(t, Options{Heartbeat: time.Hour}, src)
	const pushers, each = 4, 200
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for g := 0; g < pushers; g++ {
		wg.Go(func() {
			for i := 0; i < each; i++ {
				src.push("data: " + strconv.Itoa(g) + "-" + strconv.Itoa(i) + "\n\n")
			}
		})
	}
	seen := map[string]bool{}
	next := make([]int, pushers)
	for n := 0; n < pushers*each; n++ {
		line := readLine(t, body)
		readLine(t, body)
		v := strings.TrimSuffix(strings.TrimPrefix(line, "data: "), "\n")
		if seen[v] {
			t.Fatalf("%q delivered twice", v)
		}
		seen[v] = true
		g, i, _ := strings.Cut(v, "-")
		gi, _ := strconv.Atoi(g)
		ii, _ := strconv.Atoi(i)
		if ii != next[gi] {
			t.Fatalf("pusher %d: got %d, want %d (out of order)", gi, ii, next[gi])
		}
		next[gi]++
		if now := runtime.NumGoroutine(); now > before+pushers+2 {
			t.Fatalf("%d goroutines, from %d: flush goroutines pile up", now, before)
		}
	}
	wg.Wait()
	c := onlyConn(t, p)
	waitFor(t, "the writer did not end once idle", func() bool { return !c.writing.Load() })
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// A parked TLS stream holds one descriptor on the server side, as a plain
// one does: the epoll set watches the connection's own (a duplicate, as
// plain streams use, would make 10k TLS streams need 20k descriptors).
// Each stream here is two descriptors in all, its client's and the
// server's; closing them gives every one back.
func TestTLSParkedStreamHoldsOneDescriptor(t *testing.T) {
	p, err := New(Options{Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(nil)
	const n = 20
	before := openFDs(t)
	var clients []*tls.Conn
	var srcs []*fakeSource
	for range n {
		src := newSource()
		_, client := parkTLSOn(t, p, src)
		clients = append(clients, client)
		srcs = append(srcs, src)
	}
	if got := openFDs(t) - before; got != 2*n {
		t.Fatalf("%d streams opened %d descriptors, want %d (one each side)", n, got, 2*n)
	}
	for _, c := range clients {
		c.Close()
	}
	for _, src := range srcs {
		select {
		case <-src.closed:
		case <-time.After(10 * time.Second):
			t.Fatal("source not closed after its client left")
		}
	}
	waitFor(t, "descriptors left open", func() bool { return openFDs(t) == before })
}
