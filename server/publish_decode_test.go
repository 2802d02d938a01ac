package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
)

// decodeWithJSON is readPublish's decoding before decodePublishFast: what
// encoding/json makes of body, and whether it accepts it.
func decodeWithJSON(body []byte) (publishRequest, bool) {
	var req publishRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, false
	}
	return req, true
}

// TestDecodePublishFast: the usual bodies take the fast path, with
// encoding/json's result; any other body is left to encoding/json, which
// gives its own result or error.
func TestDecodePublishFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		fast bool // decodePublishFast takes it
	}{
		{"usual", `{"topic":"bench","data":"hello world 0123456789"}`, true},
		{"with type and spaces", " {\n \"topic\" : \"a/b\" ,\t\"type\":\"chat.message\", \"data\":\"x\"\r\n}\n", true},
		{"empty object", `{}`, true},
		{"simple escapes", `{"topic":"t","data":"a\"b\\c\/d\n\r\t\b\f"}`, true},
		{"JSON in data", `{"topic":"t","data":"{\"a\":[1,2]}"}`, true},
		{"UTF-8", `{"topic":"tö","data":"héllo ✓ 😀"}`, true},
		{"empty strings", `{"topic":"","data":"","type":""}`, true},
		{"u escape", `{"topic":"t","data":"\u003chi\u003e"}`, false},
		{"lone surrogate", `{"topic":"t","data":"\ud800"}`, false},
		{"invalid UTF-8", "{\"topic\":\"t\",\"data\":\"\xff\"}", false},
		{"invalid UTF-8 after an escape", "{\"topic\":\"t\",\"data\":\"\\n\xff\"}", false},
		{"control character", "{\"topic\":\"t\",\"data\":\"a\x01b\"}", false},
		{"capitalised member", `{"Topic":"t","data":"x"}`, false},
		{"unknown member", `{"topic":"t","data":"x","id":"1"}`, false},
		{"member twice", `{"topic":"t","topic":"u"}`, false},
		{"null", `{"topic":null,"data":"x"}`, false},
		{"number", `{"topic":"t","data":1}`, false},
		{"two values", `{"topic":"t"} {"topic":"u"}`, false},
		{"trailing comma", `{"topic":"t",}`, false},
		{"not an object", `["t"]`, false},
		{"empty", ``, false},
		{"cut short", `{"topic":"t","data":"x`, false},
		{"bad escape", `{"topic":"t","data":"\x"}`, false},
		{"escape in a name", `{"top\u0069c":"t"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodePublishFast([]byte(tc.body))
			if ok != tc.fast {
				t.Fatalf("fast path took it: %v, want %v", ok, tc.fast)
			}
			want, valid := decodeWithJSON([]byte(tc.body))
			if ok && (!valid || got != want) {
				t.Errorf("fast path gave %+v; encoding/json gives %+v (accepted: %v)", got, want, valid)
			}
		})
	}
}

// FuzzDecodePublishFast: whatever the fast path accepts, encoding/json
// accepts with the same result.
func FuzzDecodePublishFast(f *testing.F) {
	for _, s := range []string{
		`{"topic":"bench","data":"hello"}`,
		`{"topic":"t","data":"a\"b\\c\n","type":"x"}`,
		`{"topic":"tö","data":"😀"}`,
		`{"topic":"t","data":"\u00e9"}`,
		`{}`, ` { } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := decodePublishFast(body)
		if !ok {
			return
		}
		want, valid := decodeWithJSON(body)
		if !valid || got != want {
			t.Errorf("%q: fast path gave %+v; encoding/json gives %+v (accepted: %v)", body, got, want, valid)
		}
	})
}

// TestWritePublishAnswer: the answer is writeJSON's, byte for byte, with
// and without the shortcut.
func TestWritePublishAnswer(t *testing.T) {
	for _, tc := range []struct {
		id  string
		dup bool
	}{
		{"12345", false},
		{"aB3-_x.Qw9_-zz.17", true},
		{`odd"<id>&`, false},
		{"é", true},
	} {
		want := httptest.NewRecorder()
		writeJSON(want, 201, publishAnswer{ID: tc.id, Duplicate: tc.dup})
		got := httptest.NewRecorder()
		writePublishAnswer(got, tc.id, tc.dup)
		if got.Code != want.Code || got.Body.String() != want.Body.String() || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") {
			t.Errorf("%q: got %d %q %q, want %d %q %q", tc.id, got.Code, got.Header().Get("Content-Type"), got.Body, want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}
