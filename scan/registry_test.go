package scan

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// TestRegistry: every rule has its documentation and its code, IDs are
// unique, and Rules and LookupRule read the registry.
func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for i, r := range registry {
		if r.ID == "" || seen[r.ID] {
			t.Errorf("registry[%d]: ID %q empty or repeated", i, r.ID)
		}
		seen[r.ID] = true
		if r.Severity < Info || r.Severity > High {
			t.Errorf("%s: severity %v", r.ID, r.Severity)
		}
		if r.Title == "" || r.Why == "" || r.Remediation == "" || r.Reference == "" {
			t.Errorf("%s lacks a title, why (its doc), remediation or reference", r.ID)
		}
		if r.judge == nil && r.check == nil {
			t.Errorf("%s has neither a judge nor a check: nothing evaluates it", r.ID)
		}
		if got, ok := LookupRule(r.ID); !ok || got.Title != r.Title {
			t.Errorf("LookupRule(%s) = %v, %v", r.ID, got.ID, ok)
		}
	}
	if len(Rules()) != len(registry) {
		t.Errorf("Rules() has %d rules, the registry %d", len(Rules()), len(registry))
	}
}

// headOnly is a response head for observations made without the network.
func headOnly(status int, fields ...string) *rawhttp.Response {
	res := &rawhttp.Response{StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Framing: rawhttp.FramingChunked}
	for i := 0; i+1 < len(fields); i += 2 {
		res.Header = append(res.Header, rawhttp.Field{Name: fields[i], Value: fields[i+1]})
	}
	return res
}

// TestEvaluateAccountsForEveryRule: whatever was observed, the report
// lists every rule of the registry exactly once, as checked or as not
// applicable with a reason, and every finding's rule as checked.
func TestEvaluateAccountsForEveryRule(t *testing.T) {
	cfg := &Config{Profile: policy.Strict, Duration: time.Second, HeartbeatMax: 30 * time.Second, MaxLatency: time.Second}
	stream := headOnly(200, "Content-Type", "text/plain", "Server", "nginx/1.22.1")
	refusal := headOnly(503, "Content-Type", "text/html")
	loaded := newLoadAgg(&Config{Concurrency: 3, Duration: time.Second})
	loaded.stats.Opened, loaded.stats.Drops = 3, 1
	cases := map[string]*observations{
		"nothing answered":    {cfg: cfg, headTimeout: true},
		"a stream head":       {cfg: cfg, main: stream, responses: []*response{{probe: ProbeStream, res: stream, stream: true, cors: true}}},
		"a refusal over TLS":  {cfg: cfg, https: true, main: refusal, responses: []*response{{probe: ProbeStream, res: refusal, stream: true, refusal: true}}},
		"a load run":          {cfg: cfg, load: loaded},
		"a baseline, no head": {cfg: &Config{Profile: policy.Strict, Baseline: &Baseline{Version: 1}}},
	}
	for name, obs := range cases {
		t.Run(name, func(t *testing.T) {
			rep := &Report{}
			record(evaluate(obs), obs.via, rep)
			listed := map[string]int{}
			for _, id := range rep.Checked {
				listed[id]++
			}
			for id, why := range rep.NotApplicable {
				listed[id]++
				if why == "" {
					t.Errorf("%s not applicable without a reason", id)
				}
			}
			for _, r := range registry {
				if listed[r.ID] != 1 {
					t.Errorf("%s listed %d times as checked or not applicable, want once", r.ID, listed[r.ID])
				}
			}
			if len(listed) != len(registry) {
				t.Errorf("%d rules listed, the registry has %d", len(listed), len(registry))
			}
			for _, f := range rep.Findings {
				if _, na := rep.NotApplicable[f.Rule]; na {
					t.Errorf("finding of %s, which is listed as not applicable", f.Rule)
				}
			}
		})
	}
}

// TestPassRecordsOutcome: a pass records a rule as found, passed or
// skipped with the first reason given, and evaluating overrides a skip.
func TestPassRecordsOutcome(t *testing.T) {
	rule, _ := LookupRule(RuleCSP)
	tests := []struct {
		name     string
		do       func(p *pass)
		checked  bool
		reason   string
		findings int
	}{
		{"nothing", func(*pass) {}, false, notEvaluated, 0},
		{"skipped twice", func(p *pass) { p.skip("first"); p.skip("second") }, false, "first", 0},
		{"skipped, then evaluated", func(p *pass) { p.skip("first"); p.evaluated() }, true, "", 0},
		{"found on two probes", func(p *pass) { p.report("a", "x"); p.report("b", "x"); p.skip("later") }, true, "", 1},
		{"two findings", func(p *pass) { p.report("a", "x"); p.report("a", "y") }, true, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &pass{rule: &rule}
			tt.do(p)
			rep := &Report{}
			record([]*pass{p}, nil, rep)
			if checked := len(rep.Checked) == 1; checked != tt.checked || rep.NotApplicable[RuleCSP] != tt.reason || len(rep.Findings) != tt.findings {
				t.Errorf("checked %v, reason %q, %d findings; want %v, %q, %d", rep.Checked, rep.NotApplicable[RuleCSP], len(rep.Findings), tt.checked, tt.reason, tt.findings)
			}
			if tt.name == "found on two probes" && strings.Join(rep.Findings[0].Probes, ",") != "a,b" {
				t.Errorf("probes %v, want a,b", rep.Findings[0].Probes)
			}
		})
	}
}

// gzipped compresses data with gzip.
func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDecodeRefusalBody: the body of a refusal is decoded with the
// decoder streams and the proxy use (policy.DecodeContent, whose codings
// policy's tests cover), so that its shape can be judged; what cannot be
// decoded is kept as it came.
func TestDecodeRefusalBody(t *testing.T) {
	body := []byte(`{"type":"about:blank","status":406}`)
	for _, tt := range []struct {
		name, header string
		sent, want   []byte
	}{
		{"gzip", "gzip", gzipped(t, body), body},
		{"plain", "", body, body},
		{"corrupt gzip", "gzip", []byte("plain text"), []byte("plain text")},
		{"brotli", "br", []byte{0x8b, 0x02}, []byte{0x8b, 0x02}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := headOnly(http.StatusNotAcceptable, "Content-Encoding", tt.header)
			if got := decodeBody(res, tt.sent); !bytes.Equal(got, tt.want) {
				t.Errorf("decodeBody = %q, want %q", got, tt.want)
			}
		})
	}
}
