package httpserve

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// BodyDeadline bounds the time to read a request body to d from now, so
// that a client trickling a body cannot hold a handler: it sets the
// connection's read deadline through w and returns body wrapped so that
// the deadline is lifted once the body has been read to its end (net/http
// then watches the connection for the client leaving, and a deadline
// firing there would cancel the request's context or cut a long answer),
// and so that onTimeout is called when a read fails at the deadline. ok is
// false, and body comes back as it was, when w cannot set deadlines (a
// writer that is not a connection's, such as a test recorder).
func BodyDeadline(w http.ResponseWriter, body io.ReadCloser, d time.Duration, onTimeout func()) (_ io.ReadCloser, ok bool) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return body, false
	}
	return &deadlineBody{ReadCloser: body, rc: rc, onTimeout: onTimeout}, true
}

// deadlineBody is a request body read under BodyDeadline.
type deadlineBody struct {
	io.ReadCloser
	rc        *http.ResponseController
	onTimeout func()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.onTimeout()
	}
	return n, err
}
