package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/sse"
	"github.com/sseguard/sseguard/store"
)

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

// publishRequest is the body of POST /api/publish.
type publishRequest struct {
	Topic string `json:"topic"`
	Data  string `json:"data"`
	Type  string `json:"type"`
}

// publishAnswer is the body of a 201 from POST /api/publish.
type publishAnswer struct {
	ID string `json:"id"`
	// Duplicate is true when an Idempotency-Key matched an earlier publish.
	Duplicate bool `json:"duplicate,omitempty"`
}

// handlePublish serves POST /api/publish. It answers 201 only once the
// event is durable in the store.
func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) {
	principal, prob := s.auth.Authenticate(r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	if principal.Anonymous {
		policy.WriteProblem(w, r, tokenMissing("publishing needs a token with publish rights"))
		return
	}
	if !s.checkOrigin(w, r, principal) {
		return
	}
	// Everything that needs no body is checked before the body is read: a
	// credential that may not publish anything never gets to send one.
	if len(principal.Publish) == 0 {
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not publish"))
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey || strings.ContainsAny(key, "\x00\r\n") {
		policy.WriteProblem(w, r, policy.Errorf(http.StatusBadRequest, policy.CodeBadRequest, "Idempotency-Key must be at most %d bytes on one line", maxIdempotencyKey))
		return
	}
	now := time.Now()
	if prob := s.guard.allowPublish(principalKey(principal), now); prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	req, prob := s.readPublish(w, r)
	if prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	if !principal.CanPublish(req.Topic) {
		policy.WriteProblem(w, r, policy.Errorf(http.StatusForbidden, policy.CodeTopicForbidden, "this token may not publish to topic %q", req.Topic))
		return
	}
	// Last, once the request is known to be good: a refused request does
	// not spend a single-use token.
	if prob := s.guard.useJTI(principal, now); prob != nil {
		policy.WriteProblem(w, r, prob)
		return
	}
	rec := store.Record{Topic: req.Topic, Type: req.Type, Data: req.Data}
	if key != "" {
		// Keys are per principal: one publisher cannot collide with, or
		// probe, another's.
		rec.IdempotencyKey = principalKey(principal) + "\x00" + key
	}
	// The commit goes on even if the client leaves; the key makes a retry safe.
	res, err := s.hub.Publish(context.WithoutCancel(r.Context()), rec)
	if err != nil {
		s.guard.forgetJTI(principal) // nothing was stored: the token may be used again
	}
	switch {
	case errors.Is(err, hub.ErrClosed):
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusServiceUnavailable, policy.CodeUnavailable, "the server is shutting down; publish again"))
		return
	case err != nil:
		s.storeFailed(w, r, err)
		return
	}
	if res[0].Conflict {
		s.guard.forgetJTI(principal) // nothing was stored
		policy.WriteProblem(w, r, policy.NewProblem(http.StatusUnprocessableEntity, policy.CodeIdempotencyReused,
			"this Idempotency-Key was used for a different publish; nothing was stored: use a new key for a new event"))
		return
	}
	writeJSON(w, http.StatusCreated, publishAnswer{ID: res[0].Event.ID, Duplicate: res[0].Duplicate})
}

// readPublish decodes and checks a JSON or form publish body.
func (s *Server) readPublish(w http.ResponseWriter, r *http.Request) (*publishRequest, *policy.Problem) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.Publish.MaxBodyBytes)
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		mt = ""
	}
	var req publishRequest
	switch mt {
	case "application/json":
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, bodyProblem(err, "the body is not a JSON object with string fields topic, data and type")
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return nil, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "the body holds more than one JSON value")
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, bodyProblem(err, "the form body cannot be parsed")
		}
		req = publishRequest{Topic: r.PostForm.Get("topic"), Data: r.PostForm.Get("data"), Type: r.PostForm.Get("type")}
	default:
		return nil, policy.NewProblem(http.StatusUnsupportedMediaType, policy.CodeUnsupportedMedia,
			"send Content-Type: application/json or application/x-www-form-urlencoded")
	}
	if why := checkTopic(req.Topic); why != "" {
		return nil, policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, why)
	}
	if why := checkEventType(req.Type); why != "" {
		return nil, policy.NewProblem(http.StatusBadRequest, policy.CodeInvalidEvent, why)
	}
	if !utf8.ValidString(req.Data) {
		return nil, policy.NewProblem(http.StatusBadRequest, policy.CodeInvalidEvent, "data must be valid UTF-8")
	}
	if len(req.Data) > s.cfg.Publish.MaxDataBytes {
		return nil, policy.Errorf(http.StatusRequestEntityTooLarge, policy.CodeBodyTooLarge, "data is %d bytes; the limit is %d", len(req.Data), s.cfg.Publish.MaxDataBytes)
	}
	// Each line of data costs its own "data: " on the wire, so many short
	// lines could make the encoded event several times the data limit.
	if n := (sse.Event{Type: req.Type, Data: req.Data}).EncodedLen(); n > s.maxEventBytes() {
		return nil, policy.Errorf(http.StatusRequestEntityTooLarge, policy.CodeBodyTooLarge,
			"the encoded event is %d bytes (data with many lines); the limit is %d", n, s.maxEventBytes())
	}
	return &req, nil
}

// maxTypeLen bounds an event type in bytes.
const maxTypeLen = 256

// reservedTypes are the event types the hub or the browser give a meaning
// of their own: EventSource fires open and error itself, and the hub sends
// reset when history is lost. A publisher may not fake them.
var reservedTypes = map[string]bool{"open": true, "error": true, "reset": true}

// reservedTypePrefix starts the types the hub keeps for its own events:
// sseguard.heartbeat, and presence's sseguard.join and sseguard.leave,
// which a publisher must not be able to fake.
const reservedTypePrefix = "sseguard."

// checkEventType returns why t may not be a published event's type, or "".
// Types are RFC 9110 tokens of at most 256 bytes ("chat.message",
// "order-updated"), and not one of the reserved names.
func checkEventType(t string) string {
	switch {
	case t == "":
		return ""
	case len(t) > maxTypeLen:
		return fmt.Sprintf("type is %d bytes; the limit is %d", len(t), maxTypeLen)
	case !policy.IsToken(t):
		return "type must be a token: letters, digits and !#$%&'*+-.^_`|~"
	case reservedTypes[t] || strings.HasPrefix(t, reservedTypePrefix):
		return fmt.Sprintf("type %q is reserved for the hub's own events", t)
	}
	return ""
}

// maxEventBytes bounds one event's wire encoding: twice the data limit,
// plus room for the ID and type fields.
func (s *Server) maxEventBytes() int { return 2*s.cfg.Publish.MaxDataBytes + 1024 }

func bodyProblem(err error, detail string) *policy.Problem {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return policy.Errorf(http.StatusRequestEntityTooLarge, policy.CodeBodyTooLarge, "the body exceeds %d bytes", tooBig.Limit)
	}
	prob := policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, detail)
	prob.Err = err
	return prob
}
