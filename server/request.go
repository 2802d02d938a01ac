package server

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/internal/lograte"
	"github.com/sseguard/sseguard/policy"
)

// maxTopicLen bounds a topic name in bytes.
const maxTopicLen = 256

// checkTopic returns why name is not a valid topic, or "". Topics are
// printable UTF-8 without spaces and without '*', which patterns reserve.
func checkTopic(name string) string {
	switch {
	case name == "":
		return "a topic is empty"
	case len(name) > maxTopicLen:
		return fmt.Sprintf("a topic is longer than %d bytes", maxTopicLen)
	case !utf8.ValidString(name):
		return "a topic is not valid UTF-8"
	case strings.ContainsRune(name, '*'):
		return "a topic contains '*', which is reserved for patterns"
	}
	for _, r := range name {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Sprintf("a topic contains the character %q", r)
		}
	}
	return ""
}

// topicsOf reads and checks the topic query parameters: names, or
// patterns (checkPattern) when the store reads them.
func (s *Server) topicsOf(r *http.Request) ([]string, *policy.Problem) {
	raw := r.URL.Query()["topic"]
	if len(raw) == 0 {
		return nil, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "name at least one topic: ?topic=NAME")
	}
	if len(raw) > s.cfg.Stream.MaxTopics {
		return nil, policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "at most %d topics per request", s.cfg.Stream.MaxTopics)
	}
	seen := make(map[string]bool, len(raw))
	topics := raw[:0:0]
	for _, t := range raw {
		if prob := s.checkTopicOrPattern(t); prob != nil {
			return nil, prob
		}
		if !seen[t] {
			seen[t] = true
			topics = append(topics, t)
		}
	}
	return topics, nil
}

// subscriber authenticates r and checks that it may read every topic.
func (s *Server) subscriber(r *http.Request, topics []string) (*auth.Principal, *policy.Problem) {
	p, prob := s.auth.Authenticate(r)
	if prob != nil {
		return nil, prob
	}
	for _, t := range topics {
		if canSubscribe(p, t) {
			continue
		}
		if p.Anonymous {
			return nil, tokenMissing(fmt.Sprintf("topic %q needs a token", t))
		}
		return nil, policy.Errorf(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not subscribe to topic %q", t)
	}
	return p, nil
}

// tokenMissing is the 401 for a request that sent no credentials where
// some are needed.
var tokenMissing = policy.TokenMissing

// checkOrigin applies the CORS decision for principal to r, and writes the
// 403 origin_forbidden problem when the origin is refused. It reports
// whether the handler may go on.
func (s *Server) checkOrigin(w http.ResponseWriter, r *http.Request, p *auth.Principal) bool {
	allowed := p.Origins
	if p.Anonymous {
		allowed = s.cfg.CORS.AnonymousOrigins
	}
	prob := policy.CheckOrigin(w, r, s.cfg.CORS.AllowedOrigins, allowed)
	if prob == nil {
		return true
	}
	// The origin and path are the client's: clipped, and one line a
	// minute per path stands for every refusal in between.
	if n, ok := s.logs.Allow("origin refused "+lograte.Clip(r.URL.Path, 0), time.Now()); ok {
		s.log.Info("origin refused", "origin", lograte.Clip(r.Header.Get("Origin"), 0),
			"path", lograte.Clip(r.URL.Path, 0), "source", p.Source, "suppressed", n)
	}
	policy.WriteProblem(w, r, prob)
	return false
}

// handlePreflight answers CORS preflights for a route that takes method;
// see policy.Preflight.
func (s *Server) handlePreflight(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		policy.Preflight(w, r, s.cfg.CORS.AllowedOrigins, []string{method}, s.cfg.CORS.MaxAge.D())
	}
}

// requestID returns, to tie a stream's log lines together, the request's
// X-Request-ID when a peer in limits.trusted_proxies sent it and it is
// plausible (at most 64 letters, digits, '-' or '_'), or else a new random
// one: any other client could pick an ID that mixes its lines with
// another's.
func (s *Server) requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-ID"); id != "" && len(id) <= 64 && strings.Trim(id, idChars) == "" && s.guard.isTrusted(peerAddr(r)) {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"

// bodyOnStream refuses a stream request that carries a body: a stream's
// handler runs for hours and has no body deadline, and net/http would
// read up to 256 KB of an unread body, with no deadline, before the
// stream's header could go out.
func bodyOnStream(r *http.Request) *policy.Problem {
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil
	}
	return policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "a stream request carries no body")
}
