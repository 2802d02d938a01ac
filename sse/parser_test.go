package sse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"

	"github.com/sseguard/sseguard/internal/browser"
)

// msg is a dispatched event of the default type with no ID.
func msg(data string) Event { return Event{Type: "message", Data: data} }

// parsed is everything a stream does to a Parser.
type parsed struct {
	events   []Event
	err      error // the error that ended the stream; nil for io.EOF
	lastID   string
	sourceID string
	retry    time.Duration
	retrySet bool
	comments []string
}

func parseWith(r io.Reader, limit int) parsed {
	var out parsed
	p := NewParser(r)
	p.MaxEventBytes = limit
	p.OnComment = func(text string) { out.comments = append(out.comments, text) }
	for {
		ev, err := p.Next()
		if err != nil {
			if err != io.EOF {
				out.err = err
			}
			break
		}
		out.events = append(out.events, ev)
	}
	out.lastID, out.sourceID = p.LastEventID(), p.sourceID
	out.retry, out.retrySet = p.Retry()
	return out
}

// chunkReader returns its chunks one Read at a time.
type chunkReader struct{ chunks []string }

func (r *chunkReader) Read(b []byte) (int, error) {
	for len(r.chunks) > 0 && r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(b, r.chunks[0])
	r.chunks[0] = r.chunks[0][n:]
	return n, nil
}

// chunkings returns readers that deliver in in different splits: one byte at
// a time, in halves, with the final EOF on the last data, and cut in two at
// every offset (at a sample of offsets for long inputs).
func chunkings(in string) map[string]func() io.Reader {
	m := map[string]func() io.Reader{
		"one byte":      func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) },
		"halves":        func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) },
		"eof with data": func() io.Reader { return iotest.DataErrReader(strings.NewReader(in)) },
	}
	step := 1
	if len(in) > 300 {
		step = len(in)/97 + 1
	}
	for i := 1; i < len(in); i += step {
		m[fmt.Sprintf("split at %d", i)] = func() io.Reader {
			return &chunkReader{chunks: []string{in[:i], in[i:]}}
		}
	}
	return m
}

var longComment = strings.Repeat("x", 2048)

var parseTests = []struct {
	name     string
	in       string
	want     []Event
	lastID   string
	sourceID string // the last event ID string: the buffer at the last blank line
	retry    time.Duration
	retrySet bool
	comments []string // OnComment calls; not checked when nil
}{
	// Line endings.
	{name: "LF", in: "data: a\n\n", want: []Event{msg("a")}},
	{name: "CRLF", in: "data: a\r\n\r\n", want: []Event{msg("a")}},
	{name: "CR", in: "data: a\r\r", want: []Event{msg("a")}},
	{name: "mixed line endings in one event", in: "data: a\rdata: b\ndata: c\r\ndata: d\n\r\n", want: []Event{msg("a\nb\nc\nd")}},
	{name: "CRLF is one line end", in: "data: a\r\ndata: b\r\n\r\n", want: []Event{msg("a\nb")}},
	{name: "CRLF then lone CR", in: "data: a\r\n\rdata: b\n\n", want: []Event{msg("a"), msg("b")}},
	{name: "LF CR is two line ends", in: "data: a\n\rdata: b\n\n", want: []Event{msg("a"), msg("b")}},
	{name: "newline fest", in: "data:test\r\ndata\ndata:test\r\n\r", want: []Event{msg("test\n\ntest")}},
	{name: "blank lines alone dispatch nothing", in: "\n\n\r\n\r\r\n"},
	{name: "empty stream", in: ""},

	// Field parsing.
	{name: "no space after colon", in: "data:a\n\n", want: []Event{msg("a")}},
	{name: "one leading space stripped", in: "data:  a\n\n", want: []Event{msg(" a")}},
	{name: "leading tab kept", in: "data:\ttest\rdata: \ndata:test\n\n", want: []Event{msg("\ttest\n\ntest")}},
	{name: "colons in value", in: "data: a:b: c\n\n", want: []Event{msg("a:b: c")}},
	{name: "field without colon has empty value", in: "data\n\n", want: []Event{msg("")}},
	{name: "two valueless data lines", in: "data\ndata\n\n", want: []Event{msg("\n")}},
	{name: "empty data dispatches", in: "data:\n\n", want: []Event{msg("")}},
	{name: "data lines joined by LF", in: "data: a\ndata: b\ndata: c\n\n", want: []Event{msg("a\nb\nc")}},
	{name: "only one trailing LF removed", in: "data: a\ndata:\n\n", want: []Event{msg("a\n")}},
	{name: "field names are case-sensitive", in: "Data: a\nDATA: b\n\n"},
	{name: "space before colon makes another field", in: "data : a\n\n"},
	{
		name: "unknown fields ignored",
		in:   "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
		want: []Event{{Type: "message", Data: "test\n\ntest", Comment: "thisisacommentyay"}},
	},
	{
		name: "field parsing",
		in:   "data:\x00\ndata:  2\rData:1\ndata\x00:2\ndata:1\r\x00data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n",
		want: []Event{msg("\x00\n 2\n1\n3\n\n4")},
	},
	{name: "NUL in data", in: "data:\x00\n\n", want: []Event{msg("\x00")}},

	// event.
	{
		name: "event types",
		in:   "event: add\ndata: 1\n\nevent: remove\ndata: 2\n\ndata: 3\n\n",
		want: []Event{{Type: "add", Data: "1"}, {Type: "remove", Data: "2"}, msg("3")},
	},
	{name: "empty event is message", in: "event:\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "event of one space is message", in: "event: \ndata: x\n\n", want: []Event{msg("x")}},
	{name: "event type reset by a block that dispatches nothing", in: "event: x\n\ndata: y\n\n", want: []Event{msg("y")}},
	{name: "last event field wins", in: "event: a\nevent: b\ndata: x\n\n", want: []Event{{Type: "b", Data: "x"}}},
	{name: "event after data in block", in: "data: x\nevent: late\n\n", want: []Event{{Type: "late", Data: "x"}}},
	{name: "NUL in event type kept", in: "event: a\x00b\ndata: x\n\n", want: []Event{{Type: "a\x00b", Data: "x"}}},

	// id.
	{
		name: "id persists across events", in: "id: 1\ndata: a\n\ndata: b\n\n",
		want:   []Event{{ID: "1", Type: "message", Data: "a"}, {ID: "1", Type: "message", Data: "b"}},
		lastID: "1", sourceID: "1",
	},
	{
		name: "id after data applies at dispatch", in: "data: a\nid: 2\n\n",
		want: []Event{{ID: "2", Type: "message", Data: "a"}}, lastID: "2", sourceID: "2",
	},
	{
		name: "empty id resets", in: "id: 1\ndata: a\n\nid\ndata: b\n\nid: 2\ndata: c\n\nid:\ndata: d\n\n",
		want: []Event{
			{ID: "1", Type: "message", Data: "a"}, msg("b"),
			{ID: "2", Type: "message", Data: "c"}, msg("d"),
		},
	},
	{
		name: "id not ASCII", in: "id: …\nretry: 200\ndata: hello\n\n",
		want:   []Event{{ID: "…", Type: "message", Data: "hello", Retry: 200 * time.Millisecond}},
		lastID: "…", sourceID: "…", retry: 200 * time.Millisecond, retrySet: true,
	},
	{
		name: "id only block sets the ID without an event", in: "id: 7\n\n",
		lastID: "7", sourceID: "7",
	},
	{
		name: "id in unterminated block sets the buffer only", in: "data: a\n\nid: 9\ndata: b",
		want: []Event{msg("a")}, lastID: "9", sourceID: "",
	},
	{
		name: "id with leading space kept after the first", in: "id:  x\ndata: a\n\n",
		want: []Event{{ID: " x", Type: "message", Data: "a"}}, lastID: " x", sourceID: " x",
	},

	// retry.
	{
		name: "retry", in: "retry: 1500\ndata: x\n\n",
		want:  []Event{{Type: "message", Data: "x", Retry: 1500 * time.Millisecond}},
		retry: 1500 * time.Millisecond, retrySet: true,
	},
	{
		name: "retry leading zeros", in: "retry:0003000\ndata:x\n\n",
		want:  []Event{{Type: "message", Data: "x", Retry: 3 * time.Second}},
		retry: 3 * time.Second, retrySet: true,
	},
	{name: "retry zero", in: "retry: 0\ndata: x\n\n", want: []Event{msg("x")}, retrySet: true},
	{
		name: "retry bogus ignored", in: "retry:3000\nretry:1000x\ndata:x\n\n",
		want:  []Event{{Type: "message", Data: "x", Retry: 3 * time.Second}},
		retry: 3 * time.Second, retrySet: true,
	},
	{name: "retry without value ignored", in: "retry\ndata:test\n\n", want: []Event{msg("test")}},
	{name: "retry empty ignored", in: "retry:\ndata:test\n\n", want: []Event{msg("test")}},
	{name: "retry with two leading spaces ignored", in: "retry:  10\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry negative ignored", in: "retry: -1\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry plus sign ignored", in: "retry: +1\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry fraction ignored", in: "retry: 1.5\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry exponent ignored", in: "retry: 1e3\ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry trailing space ignored", in: "retry: 10 \ndata: x\n\n", want: []Event{msg("x")}},
	{name: "retry non-ASCII digits ignored", in: "retry: ١٢\nretry: １２\ndata: x\n\n", want: []Event{msg("x")}},
	{
		name: "retry overflow ignored", in: "retry: 100\n\nretry: 9223372036855\nretry: 99999999999999999999999\ndata: x\n\n",
		want: []Event{msg("x")}, retry: 100 * time.Millisecond, retrySet: true,
	},
	{
		name: "retry largest that fits", in: "retry: 9223372036854\ndata: x\n\n",
		want:  []Event{{Type: "message", Data: "x", Retry: 9223372036854 * time.Millisecond}},
		retry: 9223372036854 * time.Millisecond, retrySet: true,
	},
	{
		name: "retry of an earlier block is not on the event", in: "retry: 5\n\ndata: x\n\n",
		want: []Event{msg("x")}, retry: 5 * time.Millisecond, retrySet: true,
	},
	{
		name: "unterminated retry line is not processed", in: "data: x\nretry: 5",
		// The last line never ended, so it is not processed.
	},
	{
		name: "retry in unterminated block with a complete line", in: "data: x\nretry: 5\n",
		retry: 5 * time.Millisecond, retrySet: true,
	},

	// Byte order mark.
	{name: "BOM stripped at start only", in: "\uFEFFdata: 1\n\n\uFEFFdata: 2\n\ndata: 3\n\n", want: []Event{msg("1"), msg("3")}},
	{name: "second BOM is part of the field name", in: "\uFEFF\uFEFFdata: 1\n\ndata: 2\n\n", want: []Event{msg("2")}},
	{name: "BOM alone on the first line", in: "\uFEFF\ndata: 1\n\n", want: []Event{msg("1")}},
	{name: "partial BOM is not a BOM", in: "\xEF\xBBdata: 1\n\ndata: 2\n\n", want: []Event{msg("2")}},
	{name: "BOM after a blank first line is not stripped", in: "\n\uFEFFdata: 1\n\ndata: 2\n\n", want: []Event{msg("2")}},

	// Comments.
	{
		name: "comment fest",
		in:   "data:1\r:\x00\n:\r\ndata:2\n:" + longComment + "\rdata:3\n:data:fail\r:" + longComment + "\ndata:4\n\n",
		want: []Event{{
			Type: "message", Data: "1\n2\n3\n4",
			Comment: "\x00\n\n" + longComment + "\ndata:fail\n" + longComment,
		}},
		comments: []string{"\x00", "", longComment, "data:fail", longComment},
	},
	{name: "heartbeat dispatches nothing", in: ": keep-alive\n\n", comments: []string{"keep-alive"}},
	{
		name: "one space stripped from comments", in: ":  two\n:no\n:\ndata: x\n\n",
		want:     []Event{{Type: "message", Data: "x", Comment: " two\nno\n"}},
		comments: []string{" two", "no", ""},
	},
	{
		name: "comments belong to their block", in: ": a\n\n: b\ndata: x\n\n",
		want: []Event{{Type: "message", Data: "x", Comment: "b"}}, comments: []string{"a", "b"},
	},
	{
		name: "comment after data in block", in: "data: x\n: late\n\n",
		want: []Event{{Type: "message", Data: "x", Comment: "late"}}, comments: []string{"late"},
	},

	// UTF-8.
	{name: "UTF-8 decoded", in: "data:ok\xE2\x80\xA6\n\n", want: []Event{msg("ok…")}},
	{name: "U+FFFD kept", in: "data: \uFFFD\n\n", want: []Event{msg("\uFFFD")}},
	{name: "truncated sequence is one U+FFFD", in: "data: \xE2\x82A\n\n", want: []Event{msg("\uFFFDA")}},
	{name: "invalid bytes are one U+FFFD each", in: "data: \xFF\xFE\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD")}},
	{name: "truncated 4-byte sequence", in: "data: \xF0\x9F\x98\n\n", want: []Event{msg("\uFFFD")}},
	{name: "overlong", in: "data: \xC0\xAF\n\n", want: []Event{msg("\uFFFD\uFFFD")}},
	{name: "surrogate", in: "data: \xED\xA0\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD")}},
	{name: "above U+10FFFF", in: "data: \xF4\x90\x80\x80\n\n", want: []Event{msg("\uFFFD\uFFFD\uFFFD\uFFFD")}},
	{name: "sequence cut by a line end", in: "data: \xE2\x82\ndata: x\n\n", want: []Event{msg("\uFFFD\nx")}},
	{name: "sequence cut by CR", in: "data: \xF0\x9F\rdata: x\n\n", want: []Event{msg("\uFFFD\nx")}},
	{
		name: "invalid in id, type and comment", in: "id: \xFF1\nevent: \xE2\x82\n: \xC3\ndata: x\n\n",
		want:   []Event{{ID: "\uFFFD1", Type: "\uFFFD", Data: "x", Comment: "\uFFFD"}},
		lastID: "\uFFFD1", sourceID: "\uFFFD1", comments: []string{"\uFFFD"},
	},
	{name: "invalid byte in field name", in: "dat\xE1: x\n\n"},
	{name: "invalid bytes before colon", in: "\xE2\x82:data\ndata: y\n\n", want: []Event{msg("y")}},

	// End of stream.
	{name: "unterminated event dropped", in: "data: a\n\ndata: b\n", want: []Event{msg("a")}},
	{name: "unterminated line dropped", in: "data: a\n\ndata: b", want: []Event{msg("a")}},
	{name: "final CR ends the blank line", in: "data: a\n\r", want: []Event{msg("a")}},
}

func TestParser(t *testing.T) {
	for _, tc := range parseTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := parseWith(strings.NewReader(tc.in), 0)
			if got.err != nil {
				t.Fatalf("error %v", got.err)
			}
			if !reflect.DeepEqual(got.events, tc.want) {
				t.Errorf("events\n got %q\nwant %q", got.events, tc.want)
			}
			if got.lastID != tc.lastID {
				t.Errorf("LastEventID() = %q, want %q", got.lastID, tc.lastID)
			}
			if got.sourceID != tc.sourceID {
				t.Errorf("last event ID string = %q, want %q", got.sourceID, tc.sourceID)
			}
			if got.retry != tc.retry || got.retrySet != tc.retrySet {
				t.Errorf("Retry() = %v, %v; want %v, %v", got.retry, got.retrySet, tc.retry, tc.retrySet)
			}
			if tc.comments != nil && !reflect.DeepEqual(got.comments, tc.comments) {
				t.Errorf("OnComment calls\n got %q\nwant %q", got.comments, tc.comments)
			}
			checkChunkings(t, tc.in, 0, got)
		})
	}
}

// browserEvent is one event as a browser's EventSource dispatched it.
type browserEvent struct {
	Type string `json:"type"`
	Data string `json:"data"`
	ID   string `json:"id"`
}

// eventFieldValue finds the values of event fields, to listen for every type
// a stream might dispatch.
var eventFieldValue = regexp.MustCompile(`(?m)^event: ?([^\r\n]*)`)

// chromiumDivergences are the parser tests where Chromium departs from the
// standard, and why. The Parser follows the standard.
var chromiumDivergences = map[string]string{
	"BOM alone on the first line": "Chromium recognizes the BOM while it handles the byte after it, " +
		"then skips that byte's line-break check (EventSourceParser::AddBytes), so an LF right " +
		"after a BOM joins the next line; the standard strips the BOM before splitting lines",
}

// TestParserMatchesChromium serves each raw stream of the parser tests to
// Chromium's own EventSource and checks that it dispatches what the Parser
// does: the standard's algorithm, as a browser implements it.
func TestParserMatchesChromium(t *testing.T) {
	ctx := browser.New(t, 2*time.Minute)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>parser</title>")
	})
	mux.HandleFunc("GET /case/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n >= len(parseTests) || r.Header.Get("Last-Event-ID") != "" {
			w.WriteHeader(http.StatusNoContent) // never a second connection
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, parseTests[n].in)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}

	var types [][]string
	for _, tc := range parseTests {
		set := []string{"message"}
		for _, m := range eventFieldValue.FindAllStringSubmatch(strings.ToValidUTF8(tc.in, "\uFFFD"), -1) {
			set = append(set, m[1])
		}
		for _, e := range tc.want {
			set = append(set, e.Type)
		}
		types = append(types, set)
	}
	typesJSON, err := json.Marshal(types)
	if err != nil {
		t.Fatal(err)
	}
	// Each stream is read until its end, where the browser fires error
	// before it waits to reconnect; then the EventSource is closed.
	script := `(async (types) => {
		const all = [];
		for (let i = 0; i < types.length; i++) {
			all.push(await new Promise((resolve) => {
				const got = [];
				const es = new EventSource('/case/' + i);
				const record = (e) => got.push({type: e.type, data: e.data, id: e.lastEventId});
				for (const type of new Set(types[i])) es.addEventListener(type, record);
				es.onerror = () => { es.close(); resolve(got); };
			}));
		}
		return all;
	})(` + string(typesJSON) + `)`
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]browserEvent](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(parseTests) {
		t.Fatalf("browser read %d streams, want %d", len(got), len(parseTests))
	}
	for i, tc := range parseTests {
		want := []browserEvent{}
		for _, e := range parseWith(strings.NewReader(tc.in), 0).events {
			want = append(want, browserEvent{Type: e.Type, Data: e.Data, ID: e.ID})
		}
		if len(got[i]) == 0 && len(want) == 0 {
			continue
		}
		if why, ok := chromiumDivergences[tc.name]; ok {
			t.Logf("%s: Chromium %+q, Parser %+q: %s", tc.name, got[i], want, why)
			continue
		}
		if !reflect.DeepEqual(got[i], want) {
			t.Errorf("%s: %q\nChromium %+q\n  Parser %+q", tc.name, tc.in, got[i], want)
		}
	}
}

// checkChunkings checks that every split of in parses as want does.
func checkChunkings(t *testing.T, in string, limit int, want parsed) {
	t.Helper()
	for name, r := range chunkings(in) {
		if got := parseWith(r(), limit); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestParserLimits(t *testing.T) {
	big := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name    string
		limit   int
		in      string
		want    []Event
		wantErr error
	}{
		{name: "line over the limit", limit: 8, in: "data: a\n\ndata: 123\n\n", want: []Event{msg("a")}, wantErr: ErrEventTooLarge},
		{name: "line at the limit", limit: 9, in: "data: 123\n\n", want: []Event{msg("123")}},
		{name: "unterminated line over the limit", limit: 8, in: "data: 1234567890", wantErr: ErrEventTooLarge},
		{name: "comment line over the limit", limit: 8, in: ": 12345678\n\n", wantErr: ErrEventTooLarge},
		{name: "data over the limit", limit: 16, in: "data: a\n\ndata: 12345678\ndata: 12345678\n\n", want: []Event{msg("a")}, wantErr: ErrEventTooLarge},
		{name: "data at the limit", limit: 16, in: "data: 12345678\ndata: 1234567\n\n", want: []Event{msg("12345678\n1234567")}},
		{name: "data limit counts decoded bytes", limit: 8, in: "data:\xFF\xFF\xFF\n\n", wantErr: ErrEventTooLarge},
		{name: "data limit is per event", limit: 16, in: "data: 12345678\n\ndata: 12345678\n\n", want: []Event{msg("12345678"), msg("12345678")}},
		{
			name: "comments past the limit are not kept", limit: 10,
			in:   ": 12345\n: 67890\n: 1\ndata: x\n\n",
			want: []Event{{Type: "message", Data: "x", Comment: "12345"}},
		},
		{name: "no limit", limit: -1, in: "data: " + big(3<<20) + "\n\n", want: []Event{msg(big(3 << 20))}},
		{name: "default limit, line fits", in: "data:" + big(DefaultMaxEventBytes-5) + "\n\n", want: []Event{msg(big(DefaultMaxEventBytes - 5))}},
		{name: "default limit, line too long", in: "data:" + big(DefaultMaxEventBytes-4) + "\n\n", wantErr: ErrEventTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := parseWith(strings.NewReader(tc.in), tc.limit)
			if got.err != tc.wantErr {
				t.Fatalf("error %v, want %v", got.err, tc.wantErr)
			}
			if !reflect.DeepEqual(got.events, tc.want) {
				t.Errorf("events\n got %.80q\nwant %.80q", got.events, tc.want)
			}
			if len(tc.in) < 1000 {
				checkChunkings(t, tc.in, tc.limit, got)
			}
		})
	}
}

func TestParserErrorsAreFinal(t *testing.T) {
	p := NewParser(strings.NewReader("data: 123456789\n\ndata: a\n\n"))
	p.MaxEventBytes = 4
	for i := range 3 {
		if _, err := p.Next(); err != ErrEventTooLarge {
			t.Fatalf("call %d: error %v, want ErrEventTooLarge", i, err)
		}
	}
	p = NewParser(strings.NewReader("data: a"))
	for i := range 3 {
		if _, err := p.Next(); err != io.EOF {
			t.Fatalf("call %d: error %v, want io.EOF", i, err)
		}
	}
}

// flakyReader returns errTransient once, after its first chunk.
type flakyReader struct {
	chunks []string
	failed bool
}

var errTransient = errors.New("transient")

func (r *flakyReader) Read(b []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	if len(r.chunks) == 1 && !r.failed {
		r.failed = true
		return 0, errTransient
	}
	n := copy(b, r.chunks[0])
	r.chunks = r.chunks[1:]
	return n, nil
}

func TestParserReaderErrors(t *testing.T) {
	t.Run("returned as is", func(t *testing.T) {
		p := NewParser(iotest.ErrReader(errTransient))
		if _, err := p.Next(); err != errTransient {
			t.Fatalf("error %v, want %v", err, errTransient)
		}
	})
	t.Run("reading goes on after a reader error", func(t *testing.T) {
		// The error comes in the middle of a line and of a CRLF.
		p := NewParser(&flakyReader{chunks: []string{"data: a\r\ndata: b\r", "\ndata: c\n\n"}})
		if _, err := p.Next(); err != errTransient {
			t.Fatalf("error %v, want %v", err, errTransient)
		}
		ev, err := p.Next()
		if err != nil || ev != msg("a\nb\nc") {
			t.Fatalf("Next() = %q, %v; want %q", ev, err, msg("a\nb\nc"))
		}
	})
}

// TestParserDispatchesWithoutWaiting checks that a blank line ended by a CR
// dispatches at once, though the next byte might be an LF that belongs to it.
func TestParserDispatchesWithoutWaiting(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	p := NewParser(pr)
	type result struct {
		ev  Event
		err error
	}
	results := make(chan result)
	go func() {
		for {
			ev, err := p.Next()
			results <- result{ev, err}
			if err != nil {
				return
			}
		}
	}()
	next := func(want Event) {
		t.Helper()
		select {
		case r := <-results:
			if r.err != nil || r.ev != want {
				t.Fatalf("Next() = %q, %v; want %q", r.ev, r.err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no event %q: the parser waits for more input", want)
		}
	}
	write := func(s string) {
		t.Helper()
		if _, err := pw.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write("data: a\r")
	write("\r") // the blank line is complete; the writer sends nothing more yet
	next(msg("a"))
	write("\n") // swallowed: it ends the same blank line
	write("data: b\r\n")
	write("\r\n")
	next(msg("b"))
	pw.Close()
	if r := <-results; r.err != io.EOF {
		t.Fatalf("error %v, want io.EOF", r.err)
	}
}

// whatwgDecode is the UTF-8 decoder of the WHATWG Encoding standard, step by
// step, as a reference for appendText.
func whatwgDecode(in []byte) string {
	var out []rune
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(in); i++ {
		b := in[i]
		if needed == 0 {
			switch {
			case b <= 0x7F:
				out = append(out, rune(b))
			case b >= 0xC2 && b <= 0xDF:
				needed, cp = 1, rune(b&0x1F)
			case b >= 0xE0 && b <= 0xEF:
				if b == 0xE0 {
					lower = 0xA0
				}
				if b == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(b&0xF)
			case b >= 0xF0 && b <= 0xF4:
				if b == 0xF0 {
					lower = 0x90
				}
				if b == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(b&0x7)
			default:
				out = append(out, utf8.RuneError)
			}
			continue
		}
		if b < lower || b > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out = append(out, utf8.RuneError)
			i-- // prepend the byte to the queue
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(b&0x3F)
		seen++
		if seen == needed {
			out = append(out, cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out = append(out, utf8.RuneError)
	}
	return string(out)
}

func TestAppendTextMatchesWHATWG(t *testing.T) {
	// Every sequence of up to four bytes from the boundaries that matter.
	alphabet := []byte{
		'A', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
		0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
	}
	var buf [4]byte
	var walk func(n int)
	walk = func(n int) {
		in := buf[:n]
		if got, want := string(appendText([]byte("<"), in)), "<"+whatwgDecode(in); got != want {
			t.Fatalf("appendText(%q) = %q, want %q", in, got, want)
		}
		if n == len(buf) {
			return
		}
		for _, b := range alphabet {
			buf[n] = b
			walk(n + 1)
		}
	}
	walk(0)

	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		in := make([]byte, rng.IntN(24))
		for i := range in {
			in[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if got, want := string(appendText(nil, in)), whatwgDecode(in); got != want {
			t.Fatalf("appendText(%q) = %q, want %q", in, got, want)
		}
	}
}

// cycleReader repeats b forever.
type cycleReader struct {
	b   []byte
	off int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

func BenchmarkParse(b *testing.B) {
	var stream []byte
	for i := range 64 {
		stream, _ = Event{
			ID:   fmt.Sprint(1000 + i),
			Type: "tick",
			Data: `{"topic":"prices","seq":` + fmt.Sprint(i) + `,"value":"42.17"}`,
		}.AppendTo(stream)
	}
	stream = AppendComment(stream, "keep-alive")

	b.Run("event", func(b *testing.B) {
		p := NewParser(&cycleReader{b: stream})
		b.SetBytes(int64(len(stream) / 64))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Next(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stream of 64 events", func(b *testing.B) {
		r := bytes.NewReader(stream)
		b.SetBytes(int64(len(stream)))
		b.ReportAllocs()
		for b.Loop() {
			r.Reset(stream)
			p := NewParser(r)
			for {
				if _, err := p.Next(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
