package apispec_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/sseguard/sseguard/auth"
	"github.com/sseguard/sseguard/config"
	"github.com/sseguard/sseguard/hub"
	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/server"
	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/memory"
)

// hubConfig makes every limit small enough to reach in a few requests.
const hubConfig = `
cors:
  allowed_origins: ["https://app.example"]
limits:
  streams_per_principal: 2
  publish_rate: 1
  publish_burst: 20
  read_body_timeout: 300ms
publish:
  max_body_bytes: 4096
  max_data_bytes: 1024
dashboard:
  insecure_cookie: true
presence:
  topics: [news]
`

const (
	appOrigin  = "https://app.example"
	evilOrigin = "https://evil.example"
)

// conformance is a hub on loopback and the spec its answers are checked
// against.
type conformance struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	base   string
	client *http.Client
	secret []byte
	store  store.Store
	// covered records "METHOD /path" and status of every response
	// validated against an operation of the spec.
	covered map[string]map[string]bool
}

// startHub serves a hub with hubConfig on loopback, with a memory store
// that the test may close to make the store fail, until the test ends.
func startHub(t *testing.T, doc *openapi3.T) *conformance {
	t.Helper()
	cfg, err := config.Parse([]byte(hubConfig))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	st := memory.New(store.Retention{MaxEventsPerTopic: 100})
	h := hub.New(hub.Options{Store: st, Logger: log})
	secret := []byte("apispec-test-secret-0123456789abcdef")
	ctx, cancel := context.WithCancel(context.Background())
	v, stopVerifier, err := server.NewVerifier(ctx, cfg, secret, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	srv := server.New(cfg, h, v, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	tr := &http.Transport{}
	c := &conformance{
		t: t, doc: doc, base: "http://" + ln.Addr().String(), secret: secret, store: st,
		client: &http.Client{
			Transport: tr,
			Timeout:   20 * time.Second,
			// Redirects are answers to validate, not to follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		covered: map[string]map[string]bool{},
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server.Run: %v", err)
		}
		stopVerifier()
		_ = st.Close() // already closed by the 503 checks
	})
	// The spec names the default address; requests here go to this hub.
	doc.Servers = openapi3.Servers{{URL: c.base}}
	if c.router, err = legacy.NewRouter(doc); err != nil {
		t.Fatal(err)
	}
	return c
}

// token mints a token for sub, valid from now for an hour.
func (c *conformance) token(sub string, perms auth.Permissions) string {
	c.t.Helper()
	tok, err := auth.Mint(c.secret, sub, perms, time.Hour, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	return tok
}

// req builds a request to the hub; header holds name, value pairs.
func (c *conformance) req(method, path, body string, header ...string) *http.Request {
	c.t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// answer is a response read for validation: the head, and the body
// unless it is a stream.
type answer struct {
	status int
	header http.Header
	body   []byte
	stream io.Closer // the open body of a stream, nil otherwise
}

func (c *conformance) do(req *http.Request) *answer {
	c.t.Helper()
	resp, err := c.client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	a := &answer{status: resp.StatusCode, header: resp.Header}
	if mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); mt == "text/event-stream" || resp.StatusCode == http.StatusSwitchingProtocols {
		a.stream = resp.Body // the head is what is validated
		return a
	}
	defer resp.Body.Close()
	if a.body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20)); err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	return a
}

// check sends req, expects status (and, for a refusal, the problem code),
// and validates the answer against the operation the spec routes req to.
func (c *conformance) check(req *http.Request, status int, code string) *answer {
	c.t.Helper()
	a := c.do(req)
	if a.stream != nil {
		defer a.stream.Close()
	}
	c.validate(req, a, status, code)
	return a
}

// validate checks a (the answer to req) against the spec.
func (c *conformance) validate(req *http.Request, a *answer, status int, code string) {
	c.t.Helper()
	what := fmt.Sprintf("%s %s", req.Method, req.URL.RequestURI())
	if a.status != status {
		c.t.Errorf("%s: status %d, want %d\n%s", what, a.status, status, a.body)
		return
	}
	if code != "" {
		var p policy.Problem
		if err := json.Unmarshal(a.body, &p); err != nil || p.Code != code || p.Type != policy.ProblemTypeBase+code {
			c.t.Errorf("%s: problem %s, want error %q with its type", what, a.body, code)
		}
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Errorf("%s: the spec has no operation for it: %v", what, err)
		return
	}
	c.validateRoute(req, a, route, params)
	key := route.Method + " " + route.Path
	if c.covered[key] == nil {
		c.covered[key] = map[string]bool{}
	}
	c.covered[key][fmt.Sprint(a.status)] = true
}

// checkUnrouted checks an answer that no operation describes against the
// components response the spec's description names for it: 404 for a
// path it does not list, 405 for a method, 400 for an unclean path.
func (c *conformance) checkUnrouted(req *http.Request, status int, code, response string) {
	c.t.Helper()
	if _, _, err := c.router.FindRoute(req); err == nil {
		c.t.Errorf("%s %s: the spec routes it; check it with check", req.Method, req.URL.Path)
	}
	a := c.do(req)
	if a.status != status {
		c.t.Errorf("%s %s: status %d, want %d", req.Method, req.URL.Path, a.status, status)
		return
	}
	var p policy.Problem
	if err := json.Unmarshal(a.body, &p); err != nil || p.Code != code {
		c.t.Errorf("%s %s: problem %s, want error %q", req.Method, req.URL.Path, a.body, code)
	}
	ref := c.doc.Components.Responses[response]
	if ref == nil {
		c.t.Fatalf("components.responses.%s is missing", response)
	}
	op := openapi3.NewOperation()
	op.Responses = openapi3.NewResponses(openapi3.WithStatus(status, ref))
	c.validateRoute(req, a, &routers.Route{Spec: c.doc, Path: req.URL.Path, Method: req.Method, Operation: op}, nil)
}

func (c *conformance) validateRoute(req *http.Request, a *answer, route *routers.Route, params map[string]string) {
	c.t.Helper()
	vreq := req
	if req.Method == http.MethodHead {
		// openapi3filter skips HEAD answers; their headers are checked as
		// a GET's would be, against the HEAD operation.
		vreq = req.Clone(req.Context())
		vreq.Method = http.MethodGet
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 a.status,
		Header:                 a.header,
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   a.stream != nil || req.Method == http.MethodHead,
		},
	}
	in.SetBodyBytes(a.body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		c.t.Errorf("%s %s: %d does not conform to %s %s: %v\nheaders: %v\nbody: %s",
			req.Method, req.URL.RequestURI(), a.status, route.Method, route.Path, err, a.header, a.body)
	}
}

// publish stores one event for the checks that need one and returns its ID.
func (c *conformance) publish(tok, topic, data string) string {
	c.t.Helper()
	a := c.do(c.req("POST", "/api/publish", fmt.Sprintf(`{"topic":%q,"data":%q}`, topic, data),
		"Authorization", "Bearer "+tok, "Content-Type", "application/json"))
	var ans struct{ ID string }
	if err := json.Unmarshal(a.body, &ans); err != nil || a.status != http.StatusCreated {
		c.t.Fatalf("publish: %d %s", a.status, a.body)
	}
	return ans.ID
}

// TestResponsesConform sends a running hub every request that produces a
// response the spec lists, validates each answer with openapi3filter, and
// then checks that every listed response was produced, or is in its
// operation's x-untested with the reason.
func TestResponsesConform(t *testing.T) {
	doc := loadSpec(t)
	c := startHub(t, doc)
	reader := c.token("reader", auth.Permissions{Subscribe: []string{"news", "demo"}, Origins: []string{appOrigin}})
	publisher := c.token("publisher", auth.Permissions{Publish: []string{"news"}, Origins: []string{appOrigin}})
	limited := c.token("limited", auth.Permissions{Subscribe: []string{"news"}})
	flooder := c.token("flooder", auth.Permissions{Publish: []string{"news"}})
	dash := c.token("operator", auth.Permissions{Subscribe: []string{server.DashboardTopic}})
	expired, err := auth.Mint(c.secret, "reader", auth.Permissions{Subscribe: []string{"news"}}, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	invalid := reader[:len(reader)-4] + "AAAA" // a signature that does not verify
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	sse := []string{"Accept", "text/event-stream"}
	h := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	first := c.publish(publisher, "news", "first")
	c.publish(publisher, "news", "second")

	t.Run("stream", func(t *testing.T) {
		c.check(c.req("GET", "/events?topic=news", "", h(sse, bearer(reader), []string{"Last-Event-ID", first, "Origin", appOrigin})...), 200, "")
		c.check(c.req("GET", "/events?topic=demo", "", sse...), 200, "")
		c.check(c.req("GET", "/events?topic=news&lastEventId="+first, "", h(sse, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/events", "", h(sse, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/events?topic=a+b", "", h(sse, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/events?topic=news", "body", h(sse, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/events?topic=news", "", sse...), 401, policy.CodeTokenMissing)
		c.check(c.req("GET", "/events?topic=news", "", h(sse, bearer(expired))...), 401, policy.CodeTokenExpired)
		c.check(c.req("GET", "/events?topic=news", "", h(sse, bearer(invalid))...), 401, policy.CodeTokenInvalid)
		c.check(c.req("GET", "/events?topic=secret", "", h(sse, bearer(reader))...), 403, policy.CodeTopicForbidden)
		c.check(c.req("GET", "/events?topic=news", "", h(sse, bearer(reader), []string{"Origin", evilOrigin})...), 403, policy.CodeOriginForbidden)
		a := c.check(c.req("GET", "/events?topic=news", "", h(bearer(reader), []string{"Accept", "*/*"})...), 406, policy.CodeAcceptNotAcceptable)
		var p policy.Problem
		if json.Unmarshal(a.body, &p) == nil && p.Fallback == "" {
			t.Errorf("a stream's 406 names no fallback: %s", a.body)
		}

		c.check(c.req("HEAD", "/events?topic=news", "", h(sse, bearer(reader))...), 200, "")
		c.check(c.req("HEAD", "/events", "", h(sse, bearer(reader))...), 400, "")
		c.check(c.req("HEAD", "/events?topic=news", "", sse...), 401, "")
		c.check(c.req("HEAD", "/events?topic=secret", "", h(sse, bearer(reader))...), 403, "")
		c.check(c.req("HEAD", "/events?topic=news", "", h(bearer(reader), []string{"Accept", "*/*"})...), 406, "")
	})

	t.Run("heartbeat", func(t *testing.T) {
		c.check(c.req("GET", "/events?topic=news&heartbeat=event", "", h(sse, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/events?topic=news&heartbeat=comment", "", h(sse, bearer(reader))...), 400, policy.CodeBadRequest)
	})

	t.Run("websocket", func(t *testing.T) {
		upgrade := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13", "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
		cookie := func(tok string) []string { return []string{"Cookie", auth.DefaultCookie + "=" + tok} }
		c.check(c.req("GET", "/ws?topic=news&lastEventId="+first, "", h(upgrade, bearer(reader), []string{"Origin", appOrigin})...), 101, "")
		c.check(c.req("GET", "/ws?topic=news", "", h(upgrade, cookie(reader), []string{"Origin", c.base})...), 101, "")
		c.check(c.req("GET", "/ws?topic=news", "", bearer(reader)...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/ws?topic=news&after=a&lastEventId=b", "", h(upgrade, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/ws?topic=news", "", upgrade...), 401, policy.CodeTokenMissing)
		c.check(c.req("GET", "/ws?topic=news", "", h(upgrade, bearer(expired))...), 401, policy.CodeTokenExpired)
		c.check(c.req("GET", "/ws?topic=secret", "", h(upgrade, bearer(reader))...), 403, policy.CodeTopicForbidden)
		c.check(c.req("GET", "/ws?topic=news", "", h(upgrade, cookie(reader), []string{"Origin", evilOrigin})...), 403, policy.CodeOriginForbidden)
		c.check(c.req("GET", "/ws?topic=news", "", h(upgrade, cookie(reader))...), 403, policy.CodeOriginForbidden)
		wsLimited := c.token("ws-limited", auth.Permissions{Subscribe: []string{"news"}})
		for range 2 {
			a := c.do(c.req("GET", "/ws?topic=news", "", h(upgrade, bearer(wsLimited))...))
			if a.stream == nil {
				t.Fatalf("socket refused: %d %s", a.status, a.body)
			}
			defer a.stream.Close()
		}
		c.check(c.req("GET", "/ws?topic=news", "", h(upgrade, bearer(wsLimited))...), 429, policy.CodeTooManyStreams)
	})

	t.Run("preflight", func(t *testing.T) {
		for path, method := range map[string]string{"/events": "GET", "/api/poll": "GET", "/api/publish": "POST", "/api/presence": "GET"} {
			c.check(c.req("OPTIONS", path, "", "Origin", appOrigin, "Access-Control-Request-Method", method), 204, "")
			c.check(c.req("OPTIONS", path, "", "Origin", evilOrigin, "Access-Control-Request-Method", method), 403, policy.CodeOriginForbidden)
			c.check(c.req("OPTIONS", path, "", "Origin", appOrigin, "Access-Control-Request-Method", "DELETE"), 403, policy.CodeMethodNotAllowed)
			c.check(c.req("OPTIONS", path, ""), 405, policy.CodeMethodNotAllowed)
		}
	})

	t.Run("poll", func(t *testing.T) {
		json := []string{"Accept", "application/json"}
		c.check(c.req("GET", "/api/poll?topic=news", "", h(json, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/api/poll?topic=news&after="+first, "", h(json, bearer(reader), []string{"Origin", appOrigin})...), 200, "")
		c.check(c.req("GET", "/api/poll?topic=news&after=nonsense", "", h(json, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/api/poll?topic=news&after="+first+"&wait=0.01", "", h(json, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/api/poll?topic=news&wait=soon", "", h(json, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/api/poll?topic=news", "", json...), 401, policy.CodeTokenMissing)
		c.check(c.req("GET", "/api/poll?topic=secret", "", h(json, bearer(reader))...), 403, policy.CodeTopicForbidden)
		c.check(c.req("GET", "/api/poll?topic=news", "", h(json, bearer(reader), []string{"Origin", evilOrigin})...), 403, policy.CodeOriginForbidden)
		c.check(c.req("GET", "/api/poll?topic=news", "", h(bearer(reader), []string{"Accept", "text/html"})...), 406, policy.CodeAcceptNotAcceptable)
	})

	t.Run("presence", func(t *testing.T) {
		json := []string{"Accept", "application/json"}
		watcher := c.token("watcher", auth.Permissions{Subscribe: []string{"news", "demo"}, Origins: []string{appOrigin}, Presence: true})
		c.check(c.req("GET", "/api/presence?topic=news", "", h(json, bearer(watcher), []string{"Origin", appOrigin})...), 200, "")
		c.check(c.req("GET", "/api/presence?topic=news", "", h(json, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/api/presence?topic=news*", "", h(json, bearer(reader))...), 400, policy.CodeBadRequest)
		c.check(c.req("GET", "/api/presence?topic=news", "", json...), 401, policy.CodeTokenMissing)
		c.check(c.req("GET", "/api/presence?topic=secret", "", h(json, bearer(reader))...), 403, policy.CodeTopicForbidden)
		c.check(c.req("GET", "/api/presence?topic=demo", "", h(json, bearer(reader))...), 404, policy.CodePresenceOff)
		c.check(c.req("GET", "/api/presence?topic=news", "", h(bearer(reader), []string{"Accept", "text/html"})...), 406, policy.CodeAcceptNotAcceptable)
		c.check(c.req("GET", "/events?topic=news&presence=1", "", h(sse, bearer(reader))...), 200, "")
		c.check(c.req("GET", "/events?topic=demo&presence=1", "", h(sse, bearer(reader))...), 400, policy.CodeBadRequest)
	})

	t.Run("limits", func(t *testing.T) {
		// streams_per_principal is 2: a third stream, and a long poll,
		// are refused while two are open.
		for range 2 {
			a := c.do(c.req("GET", "/events?topic=news", "", h(sse, bearer(limited))...))
			if a.stream == nil {
				t.Fatalf("stream %d refused: %d %s", 1, a.status, a.body)
			}
			defer a.stream.Close()
		}
		c.check(c.req("GET", "/events?topic=news", "", h(sse, bearer(limited))...), 429, policy.CodeTooManyStreams)
		c.check(c.req("GET", "/api/poll?topic=news&after="+first+"&wait=5", "", h(bearer(limited), []string{"Accept", "application/json"})...), 429, policy.CodeTooManyStreams)

		// publish_burst is 20 at 1 a second: the flooder is refused within
		// a few more.
		for i := range 40 {
			a := c.do(c.req("POST", "/api/publish", fmt.Sprintf(`{"topic":"news","data":"%d"}`, i),
				h(bearer(flooder), []string{"Content-Type", "application/json"})...))
			if a.status == http.StatusCreated {
				continue
			}
			req := c.req("POST", "/api/publish", `{"topic":"news","data":"one more"}`, h(bearer(flooder), []string{"Content-Type", "application/json"})...)
			c.check(req, 429, policy.CodeRateLimited)
			return
		}
		t.Error("40 publishes at once were not rate limited")
	})

	t.Run("publish", func(t *testing.T) {
		pub := h(bearer(publisher), []string{"Content-Type", "application/json"})
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"hello","type":"note"}`, h(pub, []string{"Idempotency-Key", "k1", "Origin", appOrigin})...), 201, "")
		a := c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"hello","type":"note"}`, h(pub, []string{"Idempotency-Key", "k1"})...), 201, "")
		if !strings.Contains(string(a.body), `"duplicate":true`) {
			t.Errorf("a repeated key's answer is %s, want duplicate", a.body)
		}
		c.check(c.req("POST", "/api/publish", url.Values{"topic": {"news"}, "data": {"form"}}.Encode(),
			h(bearer(publisher), []string{"Content-Type", "application/x-www-form-urlencoded"})...), 201, "")
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x","type":"reset"}`, pub...), 400, policy.CodeInvalidEvent)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":1}`, pub...), 400, policy.CodeBadRequest)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, h(pub, []string{"Idempotency-Key", strings.Repeat("k", 201)})...), 400, policy.CodeBadRequest)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, "Content-Type", "application/json"), 401, policy.CodeTokenMissing)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, h(bearer(expired), []string{"Content-Type", "application/json"})...), 401, policy.CodeTokenExpired)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, h(bearer(invalid), []string{"Content-Type", "application/json"})...), 401, policy.CodeTokenInvalid)
		c.check(c.req("POST", "/api/publish", `{"topic":"other","data":"x"}`, pub...), 403, policy.CodeTopicForbidden)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, h(bearer(reader), []string{"Content-Type", "application/json"})...), 403, policy.CodeTopicForbidden)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"x"}`, h(pub, []string{"Origin", evilOrigin})...), 403, policy.CodeOriginForbidden)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"`+strings.Repeat("x", 5000)+`"}`, pub...), 413, policy.CodeBodyTooLarge)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"`+strings.Repeat("x", 2000)+`"}`, pub...), 413, policy.CodeBodyTooLarge)
		c.check(c.req("POST", "/api/publish", "hello", h(bearer(publisher), []string{"Content-Type", "text/plain"})...), 415, policy.CodeUnsupportedMedia)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"other"}`, h(pub, []string{"Idempotency-Key", "k1"})...), 422, policy.CodeIdempotencyReused)
		c.checkTimeout("/api/publish", "Authorization", "Bearer "+publisher, "Content-Type", "application/json")
	})

	t.Run("operations", func(t *testing.T) {
		c.check(c.req("GET", "/healthz", ""), 200, "")
		c.check(c.req("GET", "/readyz", ""), 200, "")
		c.check(c.req("GET", "/metrics", ""), 200, "")
	})

	t.Run("pages", func(t *testing.T) {
		c.check(c.req("GET", "/", ""), 200, "")
		for _, asset := range []string{"/app.js", "/app.css", "/favicon.svg", "/dashboard.js"} {
			c.check(c.req("GET", asset, ""), 200, "")
		}
		c.check(c.req("GET", "/sseguard.js", ""), 200, "")
		c.check(c.req("HEAD", "/sseguard.js", ""), 200, "")
		c.check(c.req("GET", "/nope", ""), 404, policy.CodeNotFound)

		cookie := func(tok string) []string { return []string{"Cookie", server.DashboardCookie + "=" + tok} }
		form := func(tok string) string { return url.Values{"token": {tok}}.Encode() }
		formType := []string{"Content-Type", "application/x-www-form-urlencoded"}
		c.check(c.req("GET", "/dashboard", ""), 303, "")
		c.check(c.req("GET", "/dashboard", "", cookie(dash)...), 200, "")
		c.check(c.req("GET", "/dashboard/login", ""), 200, "")
		a := c.check(c.req("POST", "/dashboard/login", form(dash), h(formType, []string{"Sec-Fetch-Site", "same-origin"})...), 303, "")
		if !strings.HasPrefix(a.header.Get("Set-Cookie"), server.DashboardCookie+"=") {
			t.Errorf("login set no dashboard cookie: %v", a.header)
		}
		c.check(c.req("POST", "/dashboard/login", form(reader), formType...), 303, "")
		c.check(c.req("POST", "/dashboard/login", form(dash), h(formType, []string{"Sec-Fetch-Site", "cross-site"})...), 403, policy.CodeOriginForbidden)
		c.check(c.req("POST", "/dashboard/logout", "", h(cookie(dash), []string{"Sec-Fetch-Site", "same-origin"})...), 303, "")
		c.check(c.req("POST", "/dashboard/logout", "", "Origin", evilOrigin), 403, policy.CodeOriginForbidden)
		c.check(c.req("GET", "/dashboard/stream", "", h(sse, cookie(dash))...), 200, "")
		c.check(c.req("GET", "/dashboard/stream", "", sse...), 401, policy.CodeTokenMissing)
		c.check(c.req("GET", "/dashboard/stream", "", h(sse, cookie(reader))...), 403, policy.CodeTopicForbidden)
		c.check(c.req("GET", "/dashboard/stream", "", h(cookie(dash), []string{"Accept", "*/*"})...), 406, policy.CodeAcceptNotAcceptable)
		c.check(c.req("GET", "/dashboard/stream", "body", h(sse, cookie(dash))...), 400, policy.CodeBadRequest)
		c.check(c.req("POST", "/dashboard/login", "token=%zz", formType...), 400, policy.CodeBadRequest)
		c.check(c.req("POST", "/dashboard/login", form(strings.Repeat("x", 17<<10)), formType...), 413, policy.CodeBodyTooLarge)
		c.checkTimeout("/dashboard/login", formType...)
		// The dashboard's streams count against the principal's limit (2).
		for range 2 {
			a := c.do(c.req("GET", "/dashboard/stream", "", h(sse, cookie(dash))...))
			if a.stream == nil {
				t.Fatalf("dashboard stream refused: %d %s", a.status, a.body)
			}
			defer a.stream.Close()
		}
		c.check(c.req("GET", "/dashboard/stream", "", h(sse, cookie(dash))...), 429, policy.CodeTooManyStreams)
	})

	t.Run("unrouted", func(t *testing.T) {
		c.checkUnrouted(c.req("DELETE", "/api/publish", ""), 405, policy.CodeMethodNotAllowed, "MethodNotAllowed")
		c.checkUnrouted(c.req("PUT", "/events?topic=news", ""), 405, policy.CodeMethodNotAllowed, "MethodNotAllowed")
		c.checkUnrouted(c.req("GET", "/no/such/route", ""), 404, policy.CodeNotFound, "NotFound")
		c.checkUnrouted(c.req("GET", "//events?topic=news", "", sse...), 400, policy.CodeBadRequest, "BadRequest")
	})

	// Last: a closed store fails what needs it with 503.
	t.Run("store failed", func(t *testing.T) {
		if err := c.store.Close(); err != nil {
			t.Fatal(err)
		}
		c.check(c.req("GET", "/readyz", ""), 503, policy.CodeUnavailable)
		c.check(c.req("GET", "/api/poll?topic=news&after="+first, "", h(bearer(reader), []string{"Accept", "application/json"})...), 503, policy.CodeUnavailable)
		c.check(c.req("POST", "/api/publish", `{"topic":"news","data":"lost"}`, h(bearer(publisher), []string{"Content-Type", "application/json"})...), 503, policy.CodeUnavailable)
	})

	c.checkCoverage()
}

// checkTimeout sends a POST to path whose body stops short and expects
// the 408 that limits.read_body_timeout gives, on a raw connection; header
// holds name, value pairs.
func (c *conformance) checkTimeout(path string, header ...string) {
	c.t.Helper()
	req := c.req("POST", path, "", header...)
	conn, err := net.Dial("tcp", req.URL.Host)
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n", path, req.URL.Host)
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&head, "%s: %s\r\n", header[i], header[i+1])
	}
	fmt.Fprintf(conn, "%s\r\n{\"topic\":", head.String()) // a JSON or form body that stops short
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		c.t.Fatalf("reading the 408: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	c.validate(req, &answer{status: resp.StatusCode, header: resp.Header, body: body}, http.StatusRequestTimeout, policy.CodeRequestTimeout)
}

// checkCoverage fails for every response the spec lists that no check
// produced and x-untested does not excuse, and for an excuse of one that
// was produced after all.
func (c *conformance) checkCoverage() {
	c.t.Helper()
	var missing []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			untested := map[string]any{}
			if x, ok := op.Extensions["x-untested"].(map[string]any); ok {
				untested = x
			}
			for status := range op.Responses.Map() {
				reason, excused := untested[status]
				switch got := c.covered[key][status]; {
				case got && excused:
					c.t.Errorf("%s %s is tested; drop it from x-untested (%v)", key, status, reason)
				case !got && !excused:
					missing = append(missing, key+" "+status)
				}
			}
			for status := range untested {
				if op.Responses.Value(status) == nil {
					c.t.Errorf("%s: x-untested names %s, which it does not list", key, status)
				}
			}
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		c.t.Errorf("no check produced %s (produce it, or say in x-untested why it cannot be)", m)
	}
}
