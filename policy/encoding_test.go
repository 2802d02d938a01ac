package policy_test

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/sseguard/sseguard/policy"
)

// compress encodes data as gzip, zlib or raw flate.
func compress(t testing.TB, how string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch how {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "zlib":
		w = zlib.NewWriter(&b)
	case "flate":
		w, _ = flate.NewWriter(&b, flate.DefaultCompression)
	default:
		t.Fatalf("no such compression %q", how)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// blockingReader fails the test if read: DecodeContent must not read the
// body before the first Read of what it returns.
type blockingReader struct{ t *testing.T }

func (b blockingReader) Read([]byte) (int, error) {
	b.t.Error("the body was read before the decoded reader was")
	return 0, io.EOF
}

func TestDecodeContent(t *testing.T) {
	plain := []byte(`{"status": 406}` + strings.Repeat(" ", 100))
	tests := []struct {
		name   string
		values []string
		body   []byte
		coding string
		err    error
	}{
		{"none", nil, plain, "", nil},
		{"identity", []string{"identity"}, plain, "", nil},
		{"gzip", []string{"gzip"}, compress(t, "gzip", plain), "gzip", nil},
		{"x-gzip in capitals", []string{" X-GZIP "}, compress(t, "gzip", plain), "x-gzip", nil},
		{"deflate as zlib", []string{"deflate"}, compress(t, "zlib", plain), "deflate", nil},
		{"deflate raw", []string{"Deflate"}, compress(t, "flate", plain), "deflate", nil},
		{"identity beside gzip", []string{"identity", "gzip"}, compress(t, "gzip", plain), "gzip", nil},
		{"brotli", []string{"br"}, plain, "br", policy.ErrUnsupportedCoding},
		{"two codings", []string{"gzip, deflate"}, plain, "gzip, deflate", policy.ErrUnsupportedCoding},
		{"two lines", []string{"gzip", "gzip"}, plain, "gzip, gzip", policy.ErrUnsupportedCoding},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dec, coding, err := policy.DecodeContent(tt.values, bytes.NewReader(tt.body))
			if coding != tt.coding || !errors.Is(err, tt.err) {
				t.Fatalf("coding %q, error %v; want %q, %v", coding, err, tt.coding, tt.err)
			}
			if err != nil {
				if dec != nil {
					t.Error("a reader beside an error")
				}
				return
			}
			got, err := io.ReadAll(dec)
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("decoded %q, %v; want %q", got, err, plain)
			}
		})
	}
}

// TestDecodeContentReads: the body is read at the first Read only; an
// empty body is empty; corrupt data is told apart from a cut.
func TestDecodeContentReads(t *testing.T) {
	plain := []byte("data: x\n\n")
	for _, coding := range []string{"gzip", "deflate"} {
		if _, _, err := policy.DecodeContent([]string{coding}, blockingReader{t}); err != nil {
			t.Error(err)
		}
		dec, _, _ := policy.DecodeContent([]string{coding}, bytes.NewReader(nil))
		if got, err := io.ReadAll(dec); err != nil || len(got) != 0 {
			t.Errorf("%s, empty body: %q, %v; want nothing and no error", coding, got, err)
		}
	}
	for _, tt := range []struct {
		name, coding string
		body         []byte
		corrupt      bool
	}{
		{"not gzip", "gzip", []byte("not gzip at all"), true},
		{"bad zlib checksum", "deflate", append(compress(t, "zlib", plain)[:len(compress(t, "zlib", plain))-1], 0), true},
		{"truncated zlib", "deflate", compress(t, "zlib", plain)[:10], false},
		{"truncated gzip", "gzip", compress(t, "gzip", plain)[:15], false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dec, _, _ := policy.DecodeContent([]string{tt.coding}, bytes.NewReader(tt.body))
			_, err := io.ReadAll(dec)
			if err == nil || policy.IsCorruptContent(err) != tt.corrupt {
				t.Errorf("%v: corrupt = %v, want %v", err, policy.IsCorruptContent(err), tt.corrupt)
			}
		})
	}
}

// Read a body whose Content-Encoding is deflate, sent as zlib (RFC 9110)
// or as the raw deflate some servers send: the decoder reads both.
func ExampleDecodeContent() {
	var compressed bytes.Buffer
	zw := zlib.NewWriter(&compressed)
	_, _ = zw.Write([]byte("data: hello\n\n"))
	_ = zw.Close()

	body, coding, err := policy.DecodeContent([]string{"deflate"}, &compressed)
	if err != nil {
		fmt.Println("cannot decode:", err)
		return
	}
	text, _ := io.ReadAll(body)
	fmt.Printf("%s: %q\n", coding, text)
	// Output: deflate: "data: hello\n\n"
}
