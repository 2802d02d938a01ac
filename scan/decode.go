package scan

import (
	"bytes"
	"io"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan/rawhttp"
)

// decodeBody undoes the content coding of the start of a refusal's or
// page's body (with policy.DecodeContent, as the proxy does), so that its
// shape can be checked; a body that cannot be decoded is returned as it
// came.
func decodeBody(res *rawhttp.Response, body []byte) []byte {
	dec, coding, err := policy.DecodeContent(res.Values("Content-Encoding"), bytes.NewReader(body))
	if err != nil || coding == "" {
		return body
	}
	out, err := io.ReadAll(io.LimitReader(dec, 64<<10))
	if err != nil && len(out) == 0 {
		return body
	}
	return out
}
