package proxy_test

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
)

// TestDeflateUpstream: an upstream that answers deflate anyway is decoded
// whether it sends zlib (RFC 9110) or the raw deflate some servers send,
// with the decoder the scanner uses (policy.DecodeContent).
func TestDeflateUpstream(t *testing.T) {
	const body = "id: 1\ndata: one\n\nid: 2\ndata: two\n\n"
	for _, tc := range []struct {
		name   string
		encode func(io.Writer) io.WriteCloser
	}{
		{"zlib", func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) }},
		{"raw deflate", func(w io.Writer) io.WriteCloser {
			fw, _ := flate.NewWriter(w, flate.DefaultCompression)
			return fw
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var compressed bytes.Buffer
			zw := tc.encode(&compressed)
			_, _ = io.WriteString(zw, body)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Content-Encoding", "deflate")
				_, _ = w.Write(compressed.Bytes())
			})
			tp := startProxy(t, baseConfig(up.URL))
			r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
			checkStreamHead(t, r, policy.Strict)
			if got := r.readAll(5 * time.Second); got != body || !r.clean {
				t.Fatalf("body %q (clean %v), want %q", got, r.clean, body)
			}
			tp.logs.mustFind(t, "header drift", map[string]any{
				"header": "Content-Encoding", "kind": "content_encoding", "upstream": []string{"deflate"},
			})
			if got := tp.logs.find(t, "upstream ended the stream with an error", nil); len(got) != 0 {
				t.Errorf("the decoder failed: %v", got)
			}
		})
	}
}

// TestDriftByMeaning: the drift log compares a policy header by meaning
// (policy.Satisfies), as the scanner does: the strict Cache-Control in
// another order is no drift; without no-transform it is.
func TestDriftByMeaning(t *testing.T) {
	for _, tc := range []struct {
		name, cacheControl, contentType string
		drift                           bool
	}{
		{"reordered", "no-store, no-cache, no-transform", "text/event-stream; charset=utf-8", false},
		{"other case and spacing", "No-Cache,no-store ,  NO-TRANSFORM", `text/event-stream;charset="UTF-8"`, false},
		{"must-revalidate added", "no-cache, no-store, no-transform, must-revalidate", "text/event-stream; charset=utf-8", false},
		{"no-transform missing", "no-store, no-cache", "text/event-stream; charset=utf-8", true},
		{"public added", "no-store, no-cache, no-transform, public", "text/event-stream; charset=utf-8", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
				policy.Strict.ApplyTo(w, r, policy.KindStream)
				w.Header().Set("Cache-Control", tc.cacheControl)
				w.Header().Set("Content-Type", tc.contentType)
				_, _ = io.WriteString(w, "data: one\n\n")
			})
			tp := startProxy(t, baseConfig(up.URL))
			r := rawGet(t, tp.addr, "/events", "Accept: text/event-stream")
			checkStreamHead(t, r, policy.Strict)
			if body := r.readAll(5 * time.Second); body != "data: one\n\n" {
				t.Fatalf("body %q", body)
			}
			// The drift lines are written before the response head, so
			// they are all there once the body has been read.
			cc := tp.logs.find(t, "header drift", map[string]any{"header": "Cache-Control"})
			switch {
			case tc.drift && len(cc) != 1:
				t.Errorf("Cache-Control %q: drift lines %v, want one", tc.cacheControl, cc)
			case tc.drift:
				if cc[0]["kind"] != "wrong_value" {
					t.Errorf("drift kind %v, want wrong_value", cc[0]["kind"])
				}
			case len(cc) != 0:
				t.Errorf("Cache-Control %q means the policy's: drift lines %v", tc.cacheControl, cc)
			}
			if ct := tp.logs.find(t, "header drift", map[string]any{"header": "Content-Type"}); len(ct) != 0 {
				t.Errorf("Content-Type %q means the policy's: drift lines %v", tc.contentType, ct)
			}
			want := 0.0
			if tc.drift {
				want = 1
			}
			if got := tp.metric(t, `sseguard_proxy_header_drift_total{header="Cache-Control",kind="wrong_value"}`); got != want {
				t.Errorf("drift metric = %v, want %v", got, want)
			}
		})
	}
}
