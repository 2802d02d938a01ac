package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// tlsSettings checks the TLS and HTTP/2 fields of s (u is the parsed URL)
// and returns the client configuration, or nil for plain HTTP.
func tlsSettings(s *settings, u *url.URL) (*tls.Config, error) {
	if u.Scheme != "https" {
		if s.H2Conns > 0 {
			return nil, configErrorf("H2Conns %d: HTTP/2 needs an https URL (h2 over TLS, as browsers speak it)", s.H2Conns)
		}
		if s.CAFile != "" || s.Insecure {
			return nil, configErrorf("CAFile and Insecure are for an https URL, got %s", u.Scheme)
		}
		return nil, nil
	}
	if s.replay {
		return nil, configErrorf("a replay run is over plain HTTP only")
	}
	if s.H2Conns < 0 {
		return nil, configErrorf("H2Conns %d is negative", s.H2Conns)
	}
	if s.H2Conns > s.streams && s.streams > 0 {
		return nil, configErrorf("H2Conns %d is more than the %d streams", s.H2Conns, s.streams)
	}
	if s.H2Conns > 0 && (s.streams+s.H2Conns-1)/s.H2Conns > maxH2StreamsPerConn {
		return nil, configErrorf("H2Conns %d: %d streams on %d HTTP/2 connections is more than %d on one (net/http's stream limit), use more connections", s.H2Conns,
			s.streams, s.H2Conns, maxH2StreamsPerConn)
	}
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	switch {
	case s.CAFile != "":
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, configErrorf("CAFile: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, configErrorf("CAFile %s holds no PEM certificate", s.CAFile)
		}
	case s.Insecure:
		// The target is loopback (checked before anything is sent): the
		// certificate of a local test hub, not a remote party, goes
		// unverified.
		tc.InsecureSkipVerify = true
	default:
		return nil, configErrorf("an https URL needs CAFile (the CA of the hub's certificate) or Insecure")
	}
	return tc, nil
}

// maxH2StreamsPerConn is net/http's default limit of concurrent streams on
// one HTTP/2 connection (http2.Server.MaxConcurrentStreams).
const maxH2StreamsPerConn = 250

// transportName says how the streams travel, for the report.
func (s *settings) transportName(u *url.URL) string {
	switch {
	case u.Scheme != "https":
		return "http/1.1"
	case s.H2Conns > 0:
		return fmt.Sprintf("h2 over TLS, %d connections", s.H2Conns)
	default:
		return "http/1.1 over TLS"
	}
}

// h1TLS returns the configuration of an HTTP/1.1 connection over TLS.
func (r *run) h1TLS() *tls.Config {
	c := r.tls.Clone()
	c.NextProtos = []string{"http/1.1"}
	return c
}

// handshake runs a TLS handshake on conn, bounded by conn's deadline.
func handshake(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// h2Pool holds the HTTP/2 connections that the streams share, stream i on
// connection i mod len(conns), each dialed by the first stream on it.
type h2Pool struct {
	conns []*h2Slot
}

type h2Slot struct {
	once sync.Once
	cc   *http.ClientConn
	err  error
}

func newH2Pool(n int) *h2Pool {
	p := &h2Pool{}
	for range n {
		p.conns = append(p.conns, new(h2Slot))
	}
	return p
}

// conn returns stream i's connection, dialing it on first use: one TLS
// connection that speaks HTTP/2 only, from the stream's source address.
func (p *h2Pool) conn(ctx context.Context, r *run, i int) (*http.ClientConn, error) {
	s := p.conns[i%len(p.conns)]
	s.once.Do(func() {
		d := &net.Dialer{Timeout: r.cfg.ConnectTimeout}
		if n := len(r.cfg.Sources); n > 0 {
			d.LocalAddr = &net.TCPAddr{IP: r.cfg.Sources[(i%len(p.conns))%n].AsSlice()}
		}
		cfg := r.tls.Clone()
		cfg.NextProtos = []string{"h2"}
		tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: cfg, DisableCompression: true,
			TLSHandshakeTimeout: r.cfg.ConnectTimeout, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP2(true)
		hctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
		defer cancel()
		cc, err := tr.NewClientConn(hctx, "https", r.cfg.target.String())
		if err != nil {
			s.err = fmt.Errorf("h2 connection: %w", err)
			return
		}
		s.cc = cc
	})
	return s.cc, s.err
}

// close closes every connection.
func (p *h2Pool) close() {
	for _, s := range p.conns {
		s.once.Do(func() {}) // none dialed from now on
		if s.cc != nil {
			s.cc.Close()
		}
	}
}

// dialH2 opens stream i as an HTTP/2 stream on its shared connection. It
// returns the time from the request to the parsed response head (the
// first stream on a connection includes the dial and handshake).
func (r *run) dialH2(ctx context.Context, i int) (*stream, time.Duration, error) {
	start := time.Now()
	cc, err := r.h2.conn(ctx, r, i)
	if err != nil {
		return nil, 0, err
	}
	// The stream lives until the run closes it, not with ctx; a timer
	// bounds the wait for its head.
	sctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(r.cfg.ConnectTimeout, cancel)
	stop := context.AfterFunc(ctx, cancel)
	ok := false
	defer func() {
		stop()
		if !ok {
			timer.Stop()
			cancel()
		}
	}()
	u := *r.url
	u.Path, u.RawQuery = r.cfg.EventsPath, "topic="+url.QueryEscape(r.cfg.Topic)
	req, err := http.NewRequestWithContext(sctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", "sseguard-bench")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if r.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return nil, 0, fmt.Errorf("h2 request: %w", err)
	}
	elapsed := time.Since(start)
	if !timer.Stop() || ctx.Err() != nil {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("response head: %w", context.DeadlineExceeded)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		return nil, 0, fmt.Errorf("stream answered %s: %q", resp.Status, msg)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/event-stream" {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("stream content type %q, want text/event-stream", resp.Header.Get("Content-Type"))
	}
	s := r.newStream(nil, resp.Body)
	s.cancel = cancel
	ok = true
	return s, elapsed, nil
}
