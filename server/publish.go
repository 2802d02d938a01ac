package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
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
	// The commit goes on even if the client leaves; the key makes a retry
	// safe. (The hub reads nothing but cancellation from the context.)
	res, err := s.hub.Publish(context.Background(), rec)
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
	writePublishAnswer(w, res[0].Event.ID, res[0].Duplicate)
}

// writePublishAnswer writes the 201 of a publish: writeJSON's bytes for a
// publishAnswer, built without encoding/json when the ID needs no
// escaping (the stores' IDs never do).
func writePublishAnswer(w http.ResponseWriter, id string, duplicate bool) {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			writeJSON(w, http.StatusCreated, publishAnswer{ID: id, Duplicate: duplicate})
			return
		}
	}
	b := make([]byte, 0, len(id)+32)
	b = append(b, `{"id":"`...)
	b = append(b, id...)
	if duplicate {
		b = append(b, `","duplicate":true}`+"\n"...)
	} else {
		b = append(b, `"}`+"\n"...)
	}
	w.Header()["Content-Type"] = contentTypeJSON
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

// contentTypeJSON is the Content-Type of a 201, shared by every answer
// instead of a slice each (len == cap: an Add copies it); the policy
// replaces it with its own value when the header is written.
var contentTypeJSON = []string{"application/json"}[:1:1]

// readPublish decodes and checks a JSON or form publish body.
func (s *Server) readPublish(w http.ResponseWriter, r *http.Request) (*publishRequest, *policy.Problem) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.Publish.MaxBodyBytes)
	mt := r.Header.Get("Content-Type")
	if mt != "application/json" { // the usual value, taken as is
		var err error
		if mt, _, err = mime.ParseMediaType(mt); err != nil {
			mt = ""
		}
	}
	var req publishRequest
	switch mt {
	case "application/json":
		buf := bodyBufs.Get().(*[]byte)
		defer putBodyBuf(buf)
		body, err := readBody(r.Body, (*buf)[:0])
		*buf = body
		if err != nil {
			return nil, bodyProblem(err, "the body is not a JSON object with string fields topic, data and type")
		}
		var ok bool
		if req, ok = decodePublishFast(body); !ok {
			if prob := decodePublishJSON(body, &req); prob != nil {
				return nil, prob
			}
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

// bodyBufs holds publish body buffers: a body is read whole, decoded into
// strings of its own, and the buffer used again.
var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBody is the largest buffer bodyBufs keeps: a rare large
// publish does not pin its buffer.
const maxPooledBody = 64 << 10

func putBodyBuf(b *[]byte) {
	if cap(*b) <= maxPooledBody {
		*b = (*b)[:0]
		bodyBufs.Put(b)
	}
}

// readBody appends all of r to buf.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// decodePublishJSON decodes body with encoding/json: one object with the
// string fields of publishRequest and nothing else.
func decodePublishJSON(body []byte, req *publishRequest) *policy.Problem {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil {
		return bodyProblem(err, "the body is not a JSON object with string fields topic, data and type")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return policy.NewProblem(http.StatusBadRequest, policy.CodeBadRequest, "the body holds more than one JSON value")
	}
	return nil
}

// decodePublishFast decodes the usual publish body, a JSON object whose
// members are among "topic", "data" and "type", each once, each a string
// of valid UTF-8 with no \u escape, without encoding/json (whose decoder
// took a tenth of the hub's CPU per publish). It reports false for any
// other body, valid or not, which decodePublishJSON then decodes: the
// result of every body it accepts is encoding/json's, and every other
// body gets encoding/json's answer (TestDecodePublishFast).
func decodePublishFast(b []byte) (req publishRequest, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return req, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return req, skipSpace(b, i+1) == len(b)
	}
	var seen [3]bool
	for {
		if i >= len(b) || b[i] != '"' {
			return req, false
		}
		end := bytes.IndexByte(b[i+1:], '"')
		if end < 0 {
			return req, false
		}
		var field *string
		var k int
		switch string(b[i+1 : i+1+end]) {
		case "topic":
			field, k = &req.Topic, 0
		case "data":
			field, k = &req.Data, 1
		case "type":
			field, k = &req.Type, 2
		default: // another member, another case, or an escape in the name
			return req, false
		}
		if seen[k] {
			return req, false
		}
		seen[k] = true
		i = skipSpace(b, i+1+end+1)
		if i >= len(b) || b[i] != ':' {
			return req, false
		}
		i = skipSpace(b, i+1)
		var v string
		if v, i, ok = jsonString(b, i); !ok {
			return req, false
		}
		*field = v
		i = skipSpace(b, i)
		if i >= len(b) {
			return req, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return req, skipSpace(b, i+1) == len(b)
		default:
			return req, false
		}
	}
}

// jsonString decodes the JSON string at b[i], which must start with its
// quote, and returns it and the index after it. It reports false for a
// \u escape, a control character, invalid UTF-8 (which encoding/json
// would replace) and a string that does not end.
func jsonString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	i++
	start := i
	ascii := true
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			raw := b[start:i]
			if !ascii && !utf8.Valid(raw) {
				return "", 0, false
			}
			return string(raw), i + 1, true
		case c == '\\':
			return jsonEscaped(b, start, i, ascii)
		case c < 0x20:
			return "", 0, false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", 0, false
}

// jsonEscaped goes on with jsonString from the first backslash at b[i].
func jsonEscaped(b []byte, start, i int, ascii bool) (string, int, bool) {
	out := make([]byte, 0, len(b)-start)
	out = append(out, b[start:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(out) {
				return "", 0, false
			}
			return string(out), i + 1, true
		case c == '\\':
			i++
			if i >= len(b) {
				return "", 0, false
			}
			switch b[i] {
			case '"', '\\', '/':
				out = append(out, b[i])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			default: // \u, or not an escape at all
				return "", 0, false
			}
		case c < 0x20:
			return "", 0, false
		default:
			if c >= 0x80 {
				ascii = false
			}
			out = append(out, c)
		}
	}
	return "", 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
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
