package scan_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// sharedStream is a private stream (Bearer good, else 401) behind a
// cache that ignores Authorization, as Varnish with a forced TTL streams
// one stored object to every client: the first authorised request starts
// the one stream, and every later request, with or without credentials,
// gets its bytes from the start, then what follows. With shared unset,
// each authorised request gets its own stream, and others a 401.
type sharedStream struct {
	shared bool
	age    string // the Age header on cached answers ("" for none)

	mu      sync.Mutex
	started bool
	buf     []byte
	cond    *sync.Cond
	stop    chan struct{}
}

func (s *sharedStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(policy.WithProfile(r.Context(), policy.Strict))
	if prob := policy.Strict.CheckStreamAccept(r); prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	authorised := r.Header.Get("Authorization") == "Bearer good"
	s.mu.Lock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	cached := s.shared && s.started
	if !authorised && !cached {
		s.mu.Unlock()
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusUnauthorized, policy.CodeTokenMissing, "a token is required"))
		return
	}
	if s.shared && !s.started {
		s.started = true
		go s.produce()
	}
	s.mu.Unlock()
	policy.Strict.ApplyTo(w, r, policy.KindStream)
	if cached && s.age != "" {
		w.Header().Set("Age", s.age)
	}
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	if !s.shared {
		// Its own stream: events from now on only.
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				fmt.Fprintf(w, "id: own-%d\ndata: {\"n\":%d}\n\n", n, n)
				fl.Flush()
			}
		}
	}
	sent := 0
	stop := context.AfterFunc(r.Context(), func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	for {
		s.mu.Lock()
		for len(s.buf) == sent && r.Context().Err() == nil {
			s.cond.Wait()
		}
		chunk := s.buf[sent:]
		s.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
		sent += len(chunk)
		fl.Flush()
	}
}

// produce is the origin's one stream, which the cache stores and shares.
func (s *sharedStream) produce() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		s.buf = fmt.Appendf(s.buf, "id: shared-%d\ndata: {\"n\":%d}\n\n", n, n)
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// TestPrivateStreamCached: behind a cache that shares one stream, the
// request without credentials and the one with another principal's get
// the credentialed stream's events again (SSE-AUTH-LEAK), as does a
// second client (SSE-CACHE); behind none, each gets its own stream or a
// 401, and neither rule fires. Age: 0 on a cached answer is no evidence;
// Age above 0 alone is.
func TestPrivateStreamCached(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		srv   *sharedStream
		fires []string
		quiet []string
	}{
		{"shared stream", &sharedStream{shared: true, age: "0"}, []string{scan.RuleAuthLeak, scan.RuleCache}, nil},
		{"own streams", &sharedStream{}, nil, []string{scan.RuleAuthLeak, scan.RuleCache}},
		{"own streams, Age: 0", &sharedStream{age: "0"}, nil, []string{scan.RuleAuthLeak, scan.RuleCache}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.srv.stop = make(chan struct{})
			t.Cleanup(func() { close(tc.srv.stop) })
			base := serveT(t, tc.srv)
			rep := runScan(t, scan.Config{
				URL:              base + "/events?topic=t",
				Header:           []rawhttp.Field{{Name: "Authorization", Value: "Bearer good"}},
				OtherCredentials: []rawhttp.Field{{Name: "Authorization", Value: "Bearer other"}},
				Duration:         time.Second,
				HeartbeatMax:     2 * time.Second,
			})
			assertFires(t, rep, tc.fires...)
			assertQuiet(t, rep, tc.quiet...)
			for _, f := range rep.Findings {
				if f.Rule == scan.RuleAuthLeak && f.Severity != scan.High {
					t.Errorf("SSE-AUTH-LEAK is %s, want high", f.Severity)
				}
			}
			t.Logf("findings: %s", describe(rep))
		})
	}
}
