package scan_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/scan"
)

// TestSingleStreamProgress: a single-stream scan with Config.Progress
// shows its time, whether the head came, and the events and heartbeats
// counted so far, while the window runs; the last line has the totals.
func TestSingleStreamProgress(t *testing.T) {
	t.Parallel()
	base := serveT(t, healthy())
	var progress syncBuffer
	rep := runScan(t, scan.Config{URL: base + "/events?topic=t", Duration: 1200 * time.Millisecond, HeartbeatMax: time.Second, Progress: &progress})
	out := progress.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\r\x1b[K")
	if len(lines) < 3 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("want a line every 500ms and a final newline, got %q", out)
	}
	last := regexp.MustCompile(`^scan \d+s/1\.2s · head: 200 after \S+ · events (\d+) · heartbeats (\d+)$`).FindStringSubmatch(lines[len(lines)-1])
	if last == nil {
		t.Fatalf("last progress line %q", lines[len(lines)-1])
	}
	if st := rep.Stream; st == nil || last[1] == "0" || last[1] != strconv.Itoa(st.Events) {
		t.Errorf("progress counted %s events, the report %+v", last[1], rep.Stream)
	}
}
