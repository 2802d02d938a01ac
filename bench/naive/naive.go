// Package naive is the reference hub that sseguard's speed is measured
// against: Server-Sent Events fan-out written the way most people write it
// with net/http.
//
// It is a measuring stick, not a product. Each stream is a handler goroutine
// that owns a buffered channel (16 events); a map of topic to subscribers sits
// under one mutex; every event is formatted with fmt.Fprintf for every
// subscriber and flushed; every connection has its own 15 s heartbeat ticker.
// A subscriber whose channel is full loses the event (the common non-blocking
// send), which the load generator counts as lost. There is no
// authentication, no storage, no replay and no header policy: never expose it
// beyond loopback (the refhub command refuses to).
//
// It answers the same HTTP surface as the real hub, so that one load
// generator (package bench) drives both in the same run:
//
//	GET  /events?topic=T   text/event-stream: "id: N", "data: …" per event,
//	                       ": keep-alive" every 15 s
//	POST /api/publish      JSON {"topic":"T","data":"…","type":"…"}
//	                       answered 201 {"id":"N"}
package naive

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Heartbeat is the interval of the comment each stream gets.
const Heartbeat = 15 * time.Second

// queueLen is each subscriber's channel capacity.
const queueLen = 16

// maxBody bounds a publish request body.
const maxBody = 1 << 20

type message struct {
	id   uint64
	typ  string
	data string // data lines after the first are already prefixed with "data: "
}

type subscriber chan message

type hub struct {
	heartbeat time.Duration
	seq       atomic.Uint64

	mu     sync.Mutex
	topics map[string]map[subscriber]struct{}
}

// New returns the naive hub's handler. Every stream it serves ends when its
// request's context ends: when the client goes away, or when the server's
// BaseContext is canceled.
func New() http.Handler {
	return newHub(Heartbeat)
}

func newHub(heartbeat time.Duration) *hub {
	return &hub{heartbeat: heartbeat, topics: map[string]map[subscriber]struct{}{}}
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/events" && r.Method == http.MethodGet:
		h.events(w, r)
	case r.URL.Path == "/api/publish" && r.Method == http.MethodPost:
		h.publish(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (h *hub) events(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		http.Error(w, "missing topic", http.StatusBadRequest)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	sub := make(subscriber, queueLen)
	h.subscribe(topic, sub)
	defer h.unsubscribe(topic, sub)

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()

	ticker := time.NewTicker(h.heartbeat)
	defer ticker.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ticker.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case m := <-sub:
			var err error
			if m.typ != "" {
				_, err = fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", m.id, m.typ, m.data)
			} else {
				_, err = fmt.Fprintf(w, "id: %d\ndata: %s\n\n", m.id, m.data)
			}
			if err != nil {
				return
			}
			flusher.Flush()
		}
	}
}

func (h *hub) subscribe(topic string, sub subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.topics[topic]
	if set == nil {
		set = map[subscriber]struct{}{}
		h.topics[topic] = set
	}
	set[sub] = struct{}{}
}

func (h *hub) unsubscribe(topic string, sub subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.topics[topic], sub)
	if len(h.topics[topic]) == 0 {
		delete(h.topics, topic)
	}
}

// subscribers returns how many streams are subscribed, over all topics.
func (h *hub) subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.topics {
		n += len(set)
	}
	return n
}

type publishRequest struct {
	Topic string `json:"topic"`
	Data  string `json:"data"`
	Type  string `json:"type"`
}

func (h *hub) publish(w http.ResponseWriter, r *http.Request) {
	var req publishRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&req); err != nil {
		http.Error(w, "bad JSON body", http.StatusBadRequest)
		return
	}
	// Even a measuring stick must not let a payload inject fields.
	if req.Topic == "" || strings.ContainsAny(req.Type, "\r\n") || strings.ContainsRune(req.Data, '\r') {
		http.Error(w, "bad topic, type or data", http.StatusBadRequest)
		return
	}
	m := message{
		typ:  req.Type,
		data: strings.ReplaceAll(req.Data, "\n", "\ndata: "),
	}
	h.mu.Lock()
	// Numbered under the lock that fans out, so that concurrent publishes
	// reach every stream in ID order: the bench counts disorder as a
	// fault, and the reference must not have that one.
	m.id = h.seq.Add(1)
	for sub := range h.topics[req.Topic] {
		select {
		case sub <- m:
		default: // a full queue loses the event, as naive hubs do
		}
	}
	h.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, "{\"id\":%q}\n", strconv.FormatUint(m.id, 10))
}
