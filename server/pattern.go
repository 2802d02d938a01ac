package server

import (
	"net/http"
	"strings"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/store"
)

// checkPattern returns why p, a topic parameter with a '*', is not a valid
// topic pattern, or "". A pattern is a prefix and one '*' at its end
// ("orders/*", or "*" for every topic); the prefix follows the topic rules
// (checkTopic), has no "." or ".." segment (topics are names, not paths:
// such a prefix would only look like it leaves its parent), and does not
// start with the reserved prefix, whose topics no pattern matches.
func checkPattern(p string) string {
	prefix, ok := strings.CutSuffix(p, "*")
	switch {
	case !ok || strings.Contains(prefix, "*"):
		return "a topic pattern has one '*', at its end (orders/*)"
	case strings.HasPrefix(prefix, store.ReservedPrefix):
		return "a topic pattern may not name sseguard's own topics (" + store.ReservedPrefix + ")"
	case prefix == "":
		return ""
	}
	if why := checkTopic(prefix); why != "" {
		return strings.Replace(why, "a topic", "a topic pattern", 1)
	}
	for seg := range strings.SplitSeq(prefix, "/") {
		if seg != "" && strings.Trim(seg, ".") == "" {
			return "a topic pattern has a '.' or '..' segment"
		}
	}
	return ""
}

// checkTopicOrPattern checks a topic parameter: a name, or a pattern when
// the hub's store reads it (store.CheckPattern: store/redis reads only
// patterns under its declared prefixes).
func (s *Server) checkTopicOrPattern(t string) *policy.Problem {
	if !strings.Contains(t, "*") {
		if why := checkTopic(t); why != "" {
			return policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, why)
		}
		return nil
	}
	if why := checkPattern(t); why != "" {
		return policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, why)
	}
	if err := store.CheckPattern(s.hub.Store(), t); err != nil {
		// The store's reason, fit for a client (store/redis names
		// store.redis.pattern_prefixes), without the sentinel's words.
		why := strings.TrimPrefix(err.Error(), store.ErrPatternNotServed.Error()+": ")
		return policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, why)
	}
	return nil
}

// canSubscribe reports whether p may subscribe to t, a name or a pattern
// (auth.Principal.CanSubscribePattern: a pattern must lie wholly inside a
// grant).
func canSubscribe(p *auth.Principal, t string) bool {
	if store.IsPattern(t) {
		return p.CanSubscribePattern(t)
	}
	return p.CanSubscribe(t)
}
