package scan

import (
	"fmt"
	"strings"
)

// Severity ranks findings. The zero value is Info.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
)

var severityNames = []string{"info", "low", "medium", "high"}

func (s Severity) String() string {
	if s < Info || s > High {
		return fmt.Sprintf("Severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses "info", "low", "medium" or "high" (any case).
func ParseSeverity(s string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium or high)", s)
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Rule is one check of the catalogue: its documentation, which
// --list-rules, the docs and every report format show, and the code that
// evaluates it, as an analysis.Analyzer of golang.org/x/tools pairs its doc
// with its Run. The code is unexported because it reads the scanner's own
// records of the probes (raw response heads, stream timings), which are no
// API.
type Rule struct {
	// ID is stable; baselines, SARIF and JUnit refer to it.
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	// Title says what a good response does, in a few words.
	Title string `json:"title"`
	// Why says what goes wrong when the rule fails.
	Why string `json:"why"`
	// Remediation says how to fix it in general.
	Remediation string `json:"remediation"`
	// Nginx says how to fix it in nginx, when nginx is a usual cause.
	Nginx string `json:"nginx,omitempty"`
	// Fixes says how to fix it in other intermediaries, by key (HAProxy,
	// Apache, Caddy, Varnish, Squid), when they are a usual cause.
	Fixes map[string]string `json:"fixes,omitempty"`
	// Reference is the specification section or RFC behind the rule.
	Reference string `json:"reference"`

	// blamesIntermediary: the rule's cause is an intermediary, so a
	// finding lists every intermediary's fix when none was recognised.
	blamesIntermediary bool

	// judge, when set, evaluates the rule on one response head; it sees
	// every response of the scan in the order findings cite them, and in
	// load mode every stream's head as it opens.
	judge func(p *pass, r *response)
	// check, when set, evaluates the rule on the whole scan, after judge
	// has seen every response.
	check func(p *pass)
}

// Rule IDs.
const (
	RuleStatus      = "SSE-STATUS"
	RuleCType       = "SSE-CTYPE"
	RuleCTypeDup    = "SSE-CTYPE-DUP"
	RuleCharset     = "SSE-CHARSET"
	RuleH2ConnHdr   = "SSE-H2-CONNHDR"
	RuleH1Framing   = "SSE-H1-FRAMING"
	RuleNoCompress  = "SSE-NO-COMPRESS"
	RuleCache       = "SSE-CACHE"
	RuleAuthLeak    = "SSE-AUTH-LEAK"
	RuleFlush       = "SSE-FLUSH"
	RuleHeartbeat   = "SSE-HEARTBEAT"
	RuleCut         = "SSE-CUT"
	RuleHeadDelay   = "SSE-HEAD-DELAY"
	RuleKeepAlive   = "SSE-KEEPALIVE"
	RuleAccept      = "SSE-ACCEPT"
	RuleErrorShape  = "SSE-ERROR-SHAPE"
	RuleResume      = "SSE-RESUME"
	RuleXCTO        = "HDR-XCTO"
	RuleCSP         = "HDR-CSP"
	RuleCORS        = "HDR-CORS"
	RuleDup         = "HDR-DUP"
	RuleLeak        = "HDR-LEAK"
	RuleHSTS        = "HDR-HSTS"
	RulePolicy      = "HDR-POLICY"
	RuleOrder       = "HDR-ORDER"
	RuleDrift       = "BASELINE-DRIFT"
	RuleLoadConnect = "LOAD-CONNECT"
	RuleLoadDrop    = "LOAD-DROP"
	RuleLoadLoss    = "LOAD-LOSS"
	RuleLoadLatency = "LOAD-LATENCY"
)

// registry is every rule, in the order reports list them and the scan
// evaluates them. Everything that lists or evaluates rules reads it.
var registry = []Rule{
	{
		ID: RuleStatus, Severity: High, judge: judgeStatus,
		Title:       "the stream answers 200",
		Why:         "EventSource fails the connection for good, without reconnecting, on any status other than 200 (204 tells it to stop); redirects before the stream are followed, but nothing else is.",
		Remediation: "Answer stream requests with 200 and a text/event-stream body; send credentials the way the browser will (a cookie, or a token in -H for the scan). When the evidence shows an intermediary dropped credentials that were sent, fix the intermediary.",
		Fixes: map[string]string{
			Squid: "`login=PASSTHRU` on the cache_peer line, or Squid drops Authorization towards the origin.",
		},
		Reference: "WHATWG HTML, 9.2.3 Processing model (fail the connection)",
	},
	{
		ID: RuleCType, Severity: High, judge: judgeCType,
		Title:       "Content-Type is text/event-stream",
		Why:         "Browsers read the Content-Type lines as the Fetch standard's \"extract a MIME type\" does; unless the result is text/event-stream, EventSource fails the connection.",
		Remediation: "Send Content-Type: text/event-stream; charset=utf-8 on the stream, once, before the first byte of the body.",
		Nginx:       "never add_header Content-Type on the stream location: the origin sets it.",
		Reference:   "WHATWG HTML, 9.2.3 Processing model; WHATWG Fetch, extract a MIME type",
	},
	{
		ID: RuleCTypeDup, Severity: High, judge: judgeCTypeDup,
		Title:       "exactly one Content-Type line",
		Why:         "Two Content-Type lines are read as one list whose last element wins: the stream's type then depends on the order an intermediary wrote them, and refusals get text/event-stream glued to their JSON type.",
		Remediation: "Set Content-Type in exactly one place: the origin, or the proxy replacing the origin's value (never appending to it).",
		Nginx:       "drop `add_header Content-Type ... always`: it appends a second line, on refusals too. Let the origin set it (deploy/nginx/sseguard.conf), or replace it: `proxy_hide_header Content-Type;` plus `add_header Content-Type $sse_content_type always;` with a map on $status (deploy/nginx/sseguard-proxy-headers.conf).",
		Reference:   "RFC 9110, 5.3 Field Order and 8.3 Content-Type (a singleton field)",
	},
	{
		ID: RuleCharset, Severity: Low, judge: judgeCharset,
		Title:       "no charset other than UTF-8",
		Why:         "An event stream is always decoded as UTF-8 whatever the label says; another charset misleads intermediaries and tools that trust it.",
		Remediation: "Label the stream charset=utf-8, or leave the charset out, and encode events as UTF-8.",
		Reference:   "WHATWG HTML, 9.2.5 Parsing an event stream (always UTF-8)",
	},
	{
		ID: RuleH2ConnHdr, Severity: High, judge: judgeH2ConnHdr,
		Title:       "no connection-specific headers on HTTP/2",
		Why:         "An HTTP/2 response with Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding or Upgrade is malformed; browsers fail it (ERR_HTTP2_PROTOCOL_ERROR) and the stream never opens.",
		Remediation: "Send Connection: keep-alive on HTTP/1.1 only; let the HTTP/2 layer drop hop-by-hop fields.",
		Nginx:       "do not `add_header Connection ...`; nginx itself drops the origin's Connection on HTTP/2.",
		Reference:   "RFC 9113, 8.2.2 Connection-Specific Header Fields",
	},
	{
		ID: RuleH1Framing, Severity: Medium, judge: judgeFraming,
		Title:       "the stream is chunked or close-delimited, without Content-Length",
		Why:         "A Content-Length makes the stream end after that many bytes; a chunked body on HTTP/1.0 cannot be read by an HTTP/1.0 client.",
		Remediation: "Never send Content-Length on a stream: HTTP/1.1 streams are chunked, HTTP/1.0 streams end when the connection closes.",
		Reference:   "RFC 9112, 6.1 Transfer-Encoding and 6.3 Message Body Length",
	},
	{
		ID: RuleNoCompress, Severity: Medium, judge: judgeNoCompress,
		Title:       "the stream is not compressed, and says no-transform",
		Why:         "Compressors hold bytes until a block fills, so events arrive late and in bursts; Cache-Control: no-transform is what asks intermediaries not to compress or rewrite.",
		Remediation: "Do not compress text/event-stream; send Cache-Control with no-transform.",
		Nginx:       "`gzip off;` in the stream location, and leave text/event-stream out of gzip_types (and brotli_types).",
		Fixes: map[string]string{
			HAProxy: "leave text/event-stream out of `compression type`.",
			Apache:  "`SetEnvIf Request_URI ^/events no-gzip` (or leave text/event-stream out of AddOutputFilterByType DEFLATE).",
			Caddy:   "`encode` with a `match` that leaves out text/event-stream (`@compressible not header Content-Type text/event-stream*`).",
			Varnish: "no `set beresp.do_gzip = true;` for text/event-stream.",
		},
		Reference: "RFC 9111, 5.2.2.6 no-transform; RFC 9110, 8.4 Content-Encoding",
	},
	{
		ID: RuleCache, Severity: Medium, judge: judgeCache, check: checkReplay,
		Title:       "the stream is not cacheable",
		Why:         "A cached stream replays stale or another user's events; an Age above 0, a cache HIT header or the same events replayed to a second client show a cache answered (Age: 0 alone does not: caches send it on what they just fetched).",
		Remediation: "Send Cache-Control: no-cache, no-store, no-transform on streams, with no public, max-age or s-maxage; bypass the cache for the stream path.",
		Nginx:       "`proxy_cache off;` in the stream location.",
		Reference:   "RFC 9111, 5.2.2 Response Directives and 5.1 Age",
	},
	{
		ID: RuleAuthLeak, Severity: High, check: checkAuthLeak,
		Title:       "a private stream is never served without its credentials",
		Why:         "A shared cache that ignores Authorization and Cookie stores one user's stream and serves it to anyone who asks: a request without credentials, or with another principal's, gets the first user's events. Evidence: such a request gets the events the credentialed stream had before it connected, or a head served from storage (Age above 0, a cache HIT).",
		Remediation: "Never cache streams: send Cache-Control: no-cache, no-store, no-transform (and private) from the origin, and bypass the cache for the stream path; a cache must key on, or refuse to store, responses to requests with Authorization (RFC 9111 3.5).",
		Nginx:       "`proxy_cache off;` in the stream location (never `proxy_ignore_headers Cache-Control` there).",
		Fixes: map[string]string{
			Varnish: "`if (req.url ~ \"^/events\") { return (pass); }` (or pipe) in vcl_recv, and no forced `beresp.ttl` for text/event-stream.",
			Squid:   "`cache deny` for the stream path (`acl sse urlpath_regex ^/events` then `cache deny sse`), and no `ignore-private`/`ignore-auth` in refresh_pattern.",
			Caddy:   "no `cache` handler on the stream path.",
		},
		Reference:          "RFC 9111, 3.5 Storing Responses to Authenticated Requests",
		blamesIntermediary: true,
	},
	{
		ID: RuleFlush, Severity: High, check: checkFlush,
		// When the stream is compressed, the evidence says so: the fix is
		// then SSE-NO-COMPRESS's (no compression of text/event-stream).
		Title:       "events arrive as they are sent",
		Why:         "A buffering server or intermediary holds events until a buffer fills or the stream ends: clients see them late, in bursts, or never.",
		Remediation: "Flush after each event and heartbeat; turn off response buffering and compression for the stream in every intermediary.",
		Nginx:       "`proxy_buffering off;` in the stream location (or keep the origin's X-Accel-Buffering: no, and never list it in proxy_ignore_headers).",
		Fixes: map[string]string{
			HAProxy: "no `compression` and no `filter compression` for text/event-stream; no `option http-buffer-request` on the stream path.",
			Apache:  "`flushpackets=on` on the ProxyPass line, and no mod_deflate for the stream (`SetEnvIf Request_URI ^/events no-gzip`).",
			Caddy:   "`flush_interval -1` in reverse_proxy, and leave text/event-stream out of `encode`.",
			Varnish: "`return (pipe);` in vcl_recv for the stream path, or `set beresp.do_stream = true;` without `do_gzip`.",
			Squid:   "no ICAP/eCAP adaptation on the stream, and `cache deny` for the stream path.",
		},
		Reference: "WHATWG HTML, 9.2.7 Authoring notes and 9.2.10 Implementation advice",
	},
	{
		ID: RuleHeartbeat, Severity: Medium, check: checkHeartbeat,
		Title:       "a comment or event at least every --heartbeat-max",
		Why:         "Intermediaries close connections that stay silent; without heartbeats an idle stream is cut and every client reconnects at once.",
		Remediation: "Send a comment line (\": keep-alive\") when the stream has been idle for 15 s (sseguard: stream.heartbeat).",
		Reference:   "WHATWG HTML, 9.2.7 Authoring notes (a comment every 15 seconds or so)",
	},
	{
		ID: RuleCut, Severity: Medium, check: checkCut,
		Title:       "the stream stays open for the whole scan window",
		Why:         "A stream that ends by itself is usually cut by an intermediary's idle or read timeout; each cut costs a reconnect, and events sent in between are lost unless the server replays them.",
		Remediation: "Make every idle timeout on the path (proxies, load balancers, CDNs) longer than the heartbeat interval.",
		Nginx:       "`proxy_read_timeout 1h;` (the default 60 s cuts quiet streams) and heartbeats shorter than it.",
		Fixes: map[string]string{
			HAProxy: "`timeout client` and `timeout server` longer than the heartbeat interval (1h for the stream backend; `timeout tunnel` applies only to WebSocket and CONNECT).",
			Apache:  "`ProxyTimeout 3600` (or `timeout=3600` on the ProxyPass line; the default is `Timeout`, 60 s).",
			Caddy:   "no `read_timeout`/`write_timeout` on the reverse_proxy transport shorter than the heartbeat interval, and no short `servers { timeouts { write ... } }`.",
			Varnish: "`return (pipe);` for the stream path, or `send_timeout` and the backend's `between_bytes_timeout` longer than the heartbeat interval.",
			Squid:   "`read_timeout` (default 15 minutes) longer than the heartbeat interval.",
		},
		Reference:          "WHATWG HTML, 9.2.7 Authoring notes; nginx ngx_http_proxy_module proxy_read_timeout",
		blamesIntermediary: true,
	},
	{
		ID: RuleHeadDelay, Severity: Medium, check: checkHeadDelay,
		Title:       "the stream's response head comes before its first event",
		Why:         "EventSource opens (onopen) only when the head arrives; an intermediary that holds the head until the first body byte (response buffering, compression) leaves a quiet stream unopened until its first heartbeat, and hides every header from checks that give up waiting.",
		Remediation: "Send the head at once and flush it (the origin); turn off response buffering and compression for text/event-stream in every intermediary. The limit is --head-max (2 s).",
		Nginx:       "`proxy_buffering off;` and `gzip off;` in the stream location.",
		Fixes: map[string]string{
			HAProxy: "no `compression` for text/event-stream.",
			Apache:  "`flushpackets=on` on the ProxyPass line and no mod_deflate for the stream.",
			Caddy:   "leave text/event-stream out of `encode`, and `flush_interval -1` in reverse_proxy.",
			Varnish: "`return (pipe);` for the stream path, or no `do_gzip` on it.",
			Squid:   "no content adaptation on the stream.",
		},
		Reference:          "WHATWG HTML, 9.2.3 Processing model (announce the connection)",
		blamesIntermediary: true,
	},
	{
		ID: RuleKeepAlive, Severity: Low, judge: judgeKeepAlive,
		Title:       "an HTTP/1.1 stream keeps the connection alive",
		Why:         "Connection: close on an HTTP/1.1 stream means every reconnect pays a new TCP (and TLS) handshake, and some clients treat the close-delimited body as a failure.",
		Remediation: "Let HTTP/1.1 streams be chunked with a persistent connection.",
		Nginx:       "remove `chunked_transfer_encoding off;`: it makes nginx close the connection (Connection: close).",
		Reference:   "RFC 9112, 9.3 Persistence and 9.6 Tear-down",
	},
	{
		ID: RuleAccept, Severity: Medium, judge: judgeAccept,
		Title:       "a request without text/event-stream in Accept gets 406",
		Why:         "Streaming to clients that did not ask for text/event-stream (legacy XHR streaming with Accept: */*, JSON clients) bypasses the controls built for EventSource.",
		Remediation: "Check Accept before streaming; answer 406 application/problem+json with Retry-After and the polling fallback (sseguard: policy.Middleware).",
		Reference:   "RFC 9110, 12.5.1 Accept and 15.5.7 406 Not Acceptable",
	},
	{
		ID: RuleErrorShape, Severity: Medium, judge: judgeErrorShape,
		Title:       "refusals are JSON with nosniff, no-store and Retry-After",
		Why:         "A text/plain or HTML refusal can be sniffed or rendered, a stored refusal is served to others, and without Retry-After clients retry blindly.",
		Remediation: "Answer every refusal with one application/problem+json body, X-Content-Type-Options: nosniff, Cache-Control: no-store, and Retry-After on 406, 429 and 503 (sseguard: policy.WriteProblem).",
		Nginx:       "no `add_header ... always` of stream headers: `always` puts them on error responses too.",
		Reference:   "RFC 9457 Problem Details; RFC 9110, 10.2.3 Retry-After",
	},
	{
		ID: RuleResume, Severity: Medium, check: checkResume,
		Title:       "a reconnect with Last-Event-ID resumes the stream",
		Why:         "After a drop EventSource reconnects with Last-Event-ID; a server that refuses it, or replays the event the client already has, loses or duplicates events.",
		Remediation: "Read Last-Event-ID and continue after that event; for an ID you cannot resume from, answer 200 and say so in the stream (sseguard sends an event: reset), never an error.",
		Reference:   "WHATWG HTML, 9.2.4 The Last-Event-ID header",
	},
	{
		ID: RuleXCTO, Severity: Medium, judge: judgeXCTO,
		Title:       "X-Content-Type-Options is exactly nosniff, once",
		Why:         "Without nosniff a browser may sniff stream or error bytes as script or HTML; two lines (\"nosniff, nosniff\") are not \"nosniff\" to every browser.",
		Remediation: "Send X-Content-Type-Options: nosniff exactly once on streams and errors.",
		Nginx:       "do not both let the origin send it and `add_header` it; never `proxy_hide_header X-Content-Type-Options`.",
		Reference:   "WHATWG Fetch, X-Content-Type-Options header",
	},
	{
		ID: RuleCSP, Severity: Medium, judge: judgeCSP,
		Title:       "Content-Security-Policy is present, as strict as the profile's, and not permissive",
		Why:         "The page that opens the stream is where CSP stops injected script and exfiltration: no unsafe-inline or unsafe-eval, and connect-src not open to any host. On streams and the page the policy must allow nothing the profile's does not (compared by meaning, as the proxy compares it).",
		Remediation: "Streams: default-src 'none'; frame-ancestors 'none'. Pages: script-src 'self' without unsafe-inline or unsafe-eval, connect-src naming your stream origins only (policy.PageCSP).",
		Reference:   "W3C Content Security Policy Level 3",
	},
	{
		ID: RuleCORS, Severity: High, judge: judgeCORS,
		Title:       "CORS does not reflect foreign or null origins",
		Why:         "Reflecting any Origin, allowing null, or * with credentials lets any site read a user's stream with the user's cookies.",
		Remediation: "Answer Access-Control-Allow-Origin only with an origin on your allowlist for this principal, with Vary: Origin; never null; never * with credentials.",
		Reference:   "WHATWG Fetch, 3.2 CORS protocol",
	},
	{
		ID: RuleDup, Severity: Medium, judge: judgeDup,
		Title:       "no singleton header is repeated",
		Why:         "A repeated singleton is read differently by different clients and intermediaries; it is the mark of two layers each adding the header.",
		Remediation: "Set each header in one layer only; a proxy that must change one replaces it.",
		Nginx:       "`add_header` appends to the origin's header: leave the header to the origin, or replace it with `proxy_hide_header NAME;` plus `add_header` (deploy/nginx/sseguard-proxy-headers.conf).",
		Reference:   "RFC 9110, 5.3 Field Order",
	},
	{
		ID: RuleLeak, Severity: Low, judge: judgeLeak,
		Title:       "Server and X-Powered-By carry no versions",
		Why:         "Version numbers tell an attacker which known flaws to try.",
		Remediation: "Send Server without a version, and no X-Powered-By.",
		Nginx:       "`server_tokens off;` and `proxy_hide_header X-Powered-By;`.",
		Reference:   "RFC 9110, 10.2.4 Server",
	},
	{
		ID: RuleHSTS, Severity: Low, judge: judgeHSTS,
		Title:       "HTTPS responses carry HSTS for at least 180 days",
		Why:         "Without Strict-Transport-Security a first visit can be downgraded to HTTP and the stream read or changed in transit.",
		Remediation: "Send Strict-Transport-Security with max-age of at least 15552000 on HTTPS responses, from whatever ends TLS: sseguard serve and proxy do by default when they hold the certificate (tls.hsts); add includeSubDomains once every subdomain serves HTTPS.",
		Nginx:       "`add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;` in the TLS server block.",
		Reference:   "RFC 6797, 6.1 Strict-Transport-Security Response Header Field",
	},
	{
		ID: RulePolicy, Severity: Low, judge: judgePolicy,
		Title:       "headers match the --policy profile",
		Why:         "The profile (package policy: strict or baseline) lists what a hardened response carries; a header it names is missing or does not mean what the profile's value means (policy.Satisfies: Cache-Control directives in any order, stricter ones allowed; Content-Type by media type and charset; Vary by tokens), and no more specific rule covers it.",
		Remediation: "Send the header with the profile's value (docs/security.md lists each with its reason), or scan with the profile you mean to meet.",
		Reference:   "sseguard SPEC, Header policy; docs/security.md",
	},
	{
		ID: RuleOrder, Severity: Medium, judge: judgeOrder, check: checkOrder,
		Title:       "headers come in the order --expect-order pins",
		Why:         "The team pinned the order of these headers; a change in order shows a change in the layers that write them.",
		Remediation: "Restore the order, or update the pin if the change was meant.",
		Reference:   "docs/scan.md, --expect-order",
	},
	{
		ID: RuleDrift, Severity: Medium, check: checkDrift,
		Title:       "pinned header values have not drifted from the baseline",
		Why:         "A header pinned in the --baseline file changed its meaning, appeared, disappeared or changed its number of lines: configuration drifted between the baseline and now. Values compare by meaning (policy.Equivalent), so reordered Cache-Control directives are no drift.",
		Remediation: "Find the layer that changed the header; if the change was meant, write a new baseline with --write-baseline.",
		Reference:   "docs/scan.md, Baselines",
	},
	{
		ID: RuleLoadConnect, Severity: High, check: checkLoadConnect,
		Title:       "every stream of a load run opens",
		Why:         "Under load some streams were refused or never answered: a limit, a load balancer or the server gives out before the target concurrency.",
		Remediation: "Raise the limit that refused them (file descriptors, worker_connections, load balancer connection caps, per-IP limits), or scale out.",
		Nginx:       "raise worker_connections and worker_rlimit_nofile; each stream holds two connections (client and upstream).",
		Reference:   "docs/scan.md, Load mode",
	},
	{
		ID: RuleLoadDrop, Severity: High, check: checkLoadDrop,
		Title:       "no stream of a load run drops",
		Why:         "Streams were cut or reset during the window: every drop is a reconnect storm waiting for a real load.",
		Remediation: "Find the layer with the short timeout or connection cap (idle timeouts, upstream keepalive limits, slow-consumer limits).",
		Reference:   "docs/scan.md, Load mode",
	},
	{
		ID: RuleLoadLoss, Severity: High, check: checkLoadLoss,
		Title:       "every stream receives every published event",
		Why:         "Events published during the run never reached some streams, even after reconnecting with Last-Event-ID.",
		Remediation: "Make the server replay after Last-Event-ID, and find where events were dropped (slow-consumer cut-offs, buffers).",
		Reference:   "WHATWG HTML, 9.2.4 The Last-Event-ID header",
	},
	{
		ID: RuleLoadLatency, Severity: Medium, check: checkLoadLatency,
		Title:       "delivery latency under load stays below --max-latency",
		Why:         "The 99th percentile of publish-to-delivery time exceeded the limit: under this load clients see events late.",
		Remediation: "Profile the server and the path under load; look for buffering intermediaries and per-subscriber work on the fan-out path.",
		Reference:   "docs/scan.md, Load mode",
	},
}

// Rules returns the catalogue, in report order. The slice is a copy.
func Rules() []Rule { return append([]Rule(nil), registry...) }

// LookupRule returns the rule with the given ID.
func LookupRule(id string) (Rule, bool) {
	for _, r := range registry {
		if r.ID == id {
			return r, true
		}
	}
	return Rule{}, false
}
