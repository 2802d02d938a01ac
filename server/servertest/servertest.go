// Package servertest runs an sseguard hub (package server) on a loopback
// port for tests, as net/http/httptest runs a handler: a real listener, a
// real hub on a memory store (or a store the test gives), a signing secret
// to mint tokens with, and the hub's log for the test to read. What Start
// starts stops when the test ends, and the test then fails if the log
// holds token material.
//
//	ts := servertest.Start(t, nil)
//	tok := ts.Token(t, "alice", auth.Permissions{Subscribe: []string{"news"}})
//	req, _ := http.NewRequest("GET", ts.URL+"/events?topic=news", nil)
//	req.Header.Set("Accept", "text/event-stream")
//	req.Header.Set("Authorization", "Bearer "+tok)
//
// Package servertest is for tests of other packages, which see the hub
// from outside: package server's own tests have their own helpers, and
// sseguard serve is how a hub runs in production.
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/server"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// Server is a hub serving on loopback.
type Server struct {
	// URL is the base URL, http://127.0.0.1:PORT.
	URL string
	// Addr is the listener's address, 127.0.0.1:PORT.
	Addr string
	// Config is the configuration the hub runs with: Start's, with its
	// defaults filled in.
	Config *config.Config
	// Hub is the running hub: a test may publish and subscribe with it
	// directly.
	Hub *hub.Hub
	// Store holds the hub's events.
	Store store.Store
	// API is the hub's HTTP API, serving on URL.
	API *server.Server
	// Secret is the HS256 secret the hub verifies tokens with, drawn at
	// random for each Server unless WithSecret gave one.
	Secret []byte

	logs *lockedBuffer
	stop func() error
}

// Option changes what Start builds.
type Option func(*options)

type options struct {
	store  store.Store
	secret []byte
}

// WithSecret makes the hub verify tokens with secret instead of a random
// one: nodes of a cluster share it, so a token of one works on every one.
func WithSecret(secret []byte) Option {
	return func(o *options) { o.secret = secret }
}

// WithStore makes the hub keep its events in st instead of a new memory
// store. The test owns st: Close leaves it open.
func WithStore(st store.Store) Option {
	return func(o *options) { o.store = st }
}

// stopTimeout bounds how long Close waits for the hub to stop.
const stopTimeout = 30 * time.Second

// Start serves a hub with cfg (nil means the defaults; fields left at zero
// mean theirs, see config.Config.Fill) on a new loopback port, and stops
// it when the test ends. A configuration that does not validate fails the
// test. The hub logs at debug level into a buffer that Log returns.
func Start(t testing.TB, cfg *config.Config, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := config.Default()
	if cfg != nil {
		cp := *cfg
		cp.Fill()
		c = &cp
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("servertest: invalid configuration:\n%v", err)
	}
	ts := &Server{Config: c, Store: o.store, logs: &lockedBuffer{}}
	ownStore := ts.Store == nil
	if ownStore {
		ts.Store = memory.New(c.Store.Retention())
	}
	log := slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.Secret = o.secret
	if ts.Secret == nil {
		ts.Secret = make([]byte, 32)
		_, _ = rand.Read(ts.Secret) // never fails (crypto/rand)
	}
	v, stopKeys, err := server.NewVerifier(context.Background(), c, ts.Secret, log)
	if err != nil {
		t.Fatalf("servertest: %v", err)
	}
	ts.Hub = hub.New(hub.Options{Store: ts.Store, QueueBytes: c.Stream.QueueBytes, Logger: log})
	ts.API = server.New(c, ts.Hub, v, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopKeys()
		t.Fatalf("servertest: %v", err)
	}
	ts.Addr = ln.Addr().String()
	ts.URL = "http://" + ts.Addr

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ts.API.Run(ctx, ln) }()
	var once sync.Once
	var stopErr error
	ts.stop = func() error {
		once.Do(func() {
			cancel()
			timer := time.NewTimer(stopTimeout)
			defer timer.Stop()
			select {
			case stopErr = <-errc:
			case <-timer.C:
				stopErr = errors.New("servertest: the hub did not stop within 30 s")
			}
			stopKeys()
			if ownStore {
				// The test may have closed it already, to make it fail.
				if err := ts.Store.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
					stopErr = errors.Join(stopErr, err)
				}
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := ts.Close(); err != nil {
			t.Error(err)
		}
		// Every JWT starts "eyJ": none may ever reach a log line.
		if l := ts.Log(); strings.Contains(l, "eyJ") {
			t.Errorf("servertest: token material in the hub's log:\n%s", l)
		}
	})
	return ts
}

// Close stops the hub as sseguard serve stops on a signal: open streams
// end with a retry hint, and Close returns once everything Start started
// has stopped, with Run's error. It closes the store unless the test gave
// it (WithStore); a test may close the store itself first, to make it
// fail. It is safe to call more than once; the test's cleanup
// calls it.
func (ts *Server) Close() error { return ts.stop() }

// Token returns a token for subject with perms, valid for an hour, signed
// with the hub's secret.
func (ts *Server) Token(t testing.TB, subject string, perms auth.Permissions) string {
	t.Helper()
	tok, err := auth.Mint(ts.Secret, subject, perms, time.Hour, time.Now())
	if err != nil {
		t.Fatalf("servertest: mint a token: %v", err)
	}
	return tok
}

// Log returns what the hub logged so far: JSON lines, debug level and up.
func (ts *Server) Log() string { return ts.logs.String() }

// lockedBuffer is a log destination that handlers on many goroutines
// write to while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
