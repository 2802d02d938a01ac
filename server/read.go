package server

import (
	"net/http"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
)

// readKind names the read endpoint a request came to.
type readKind int

const (
	readStream readKind = iota // GET /events
	readPoll                   // GET /api/poll
	readWS                     // GET /ws
)

// authorizeRead decides, the same way for the stream and for polling,
// whether r may read the topics it names, in this order:
//
//   - the request's shape: a stream request carries no body
//     (bodyOnStream); a WebSocket request is a well-formed handshake
//     (wsHandshake); a poll accepts JSON;
//   - its topics (topicsOf);
//   - a principal that may subscribe to every one of them (subscriber);
//   - its origin, allowed for that principal (checkOrigin, which also
//     sets the CORS headers); a WebSocket authenticated by the cookie
//     must send one (browsers always do on a WebSocket handshake, and a
//     hop that strips it would otherwise switch the check off).
//
// On a refusal it writes the problem and reports false. A stream's topic
// problems carry the poll fallback; a poll's do not, as it is the fallback.
func (s *Server) authorizeRead(w http.ResponseWriter, r *http.Request, kind readKind) ([]string, *auth.Principal, bool) {
	switch kind {
	case readWS:
		if prob := wsHandshake(r); prob != nil {
			policy.WriteProblem(w, r, prob)
			return nil, nil, false
		}
		fallthrough
	case readStream:
		if prob := bodyOnStream(r); prob != nil {
			policy.WriteProblem(w, r, prob)
			return nil, nil, false
		}
	case readPoll:
		if !policy.AcceptsJSON(r.Header.Values("Accept")) {
			policy.WriteProblem(w, r, policy.NewProblem(http.StatusNotAcceptable, policy.CodeAcceptNotAcceptable,
				"this endpoint answers application/json only"))
			return nil, nil, false
		}
	}
	topics, prob := s.topicsOf(r)
	if prob != nil {
		if kind != readPoll {
			prob.Fallback = s.profile.Fallback
		}
		policy.WriteProblem(w, r, prob)
		return nil, nil, false
	}
	principal, prob := s.subscriber(r, topics)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return nil, nil, false
	}
	if !s.checkOrigin(w, r, principal) {
		return nil, nil, false
	}
	if kind == readWS && r.Header.Get("Origin") == "" && s.viaCookie(r, principal) {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusForbidden, policy.CodeOriginForbidden,
			"a WebSocket authenticated by cookie must send Origin; clients that are not browsers send Authorization: Bearer"))
		return nil, nil, false
	}
	return topics, principal, true
}

// holdConn takes a place in the connection limits (per principal and per
// client IP) for a request that holds its connection open: a stream or a
// long poll. It returns the release function, or writes the refusal and
// returns nil.
func (s *Server) holdConn(w http.ResponseWriter, r *http.Request, p *auth.Principal) func() {
	release, prob := s.guard.openStream(principalKey(p), s.guard.clientIP(r))
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return nil
	}
	return release
}

// subscribe registers a subscriber for topics, or writes the 503 of a hub
// that is shutting down and returns nil.
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request, topics []string) *hub.Subscriber {
	sub, err := s.hub.Subscribe(topics)
	if err != nil {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "the server is shutting down"))
		return nil
	}
	return sub
}
