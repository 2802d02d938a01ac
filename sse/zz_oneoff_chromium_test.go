package sse

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestOneOffCorpusChromium(t *testing.T) {
	files, _ := filepath.Glob("/root/.cache/go-build/fuzz/github.com/sseguard/sseguard/sse/FuzzParse/*")
	files2, _ := filepath.Glob("testdata/fuzz/FuzzParse/*")
	saved := parseTests
	defer func() { parseTests = saved }()
	parseTests = nil
	for _, f := range append(files, files2...) {
		b, _ := os.ReadFile(f)
		lines := strings.Split(string(b), "\n")
		lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
		s, err := strconv.Unquote(lit)
		if err != nil {
			t.Fatal(f, err)
		}
		parseTests = append(parseTests, struct {
			name     string
			in       string
			want     []Event
			lastID   string
			sourceID string
			retry    time.Duration
			retrySet bool
			comments []string
		}{name: filepath.Base(f), in: s})
	}
	TestParserMatchesChromium(t)
}
