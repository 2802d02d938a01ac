package scan_test

import (
	"bytes"
	"compress/zlib"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
	"github.com/sseguard/sseguard/sse"
)

// Scan a stream served with the library's policy middleware and stream
// writer, and fail a CI step on medium findings.
func ExampleRun() {
	srv := httptest.NewServer(policy.Middleware(policy.Strict)(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			st, err := sse.NewStream(w, r, nil)
			if err != nil {
				return
			}
			_ = st.Run(r.Context(), nil)
		})))
	defer srv.Close()

	rep, err := scan.Run(context.Background(), scan.Config{
		URL:      srv.URL + "/events",
		Duration: 300 * time.Millisecond,
	})
	if err != nil {
		fmt.Println("scan failed:", err)
		return
	}
	fmt.Println("findings at or above medium:", rep.Count(scan.Medium))
	if rep.Failed(scan.Medium) {
		_ = rep.WriteText(os.Stdout, scan.TextOptions{FailOn: scan.Medium})
	}
	// Output: findings at or above medium: 0
}

// Read a body whose Content-Encoding is deflate, sent as zlib (RFC 9110)
// or as the raw deflate some servers send: the decoder reads both.
func ExampleDecodeContent() {
	var compressed bytes.Buffer
	zw := zlib.NewWriter(&compressed)
	_, _ = zw.Write([]byte("data: hello\n\n"))
	_ = zw.Close()

	body, coding, err := scan.DecodeContent([]string{"deflate"}, &compressed)
	if err != nil {
		fmt.Println("cannot decode:", err)
		return
	}
	text, _ := io.ReadAll(body)
	fmt.Printf("%s: %q\n", coding, text)
	// Output: deflate: "data: hello\n\n"
}
