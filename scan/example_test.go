package scan_test

import (
	"context"
	"fmt"
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
