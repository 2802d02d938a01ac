//go:build !linux

package park

import (
	"net"
	"time"
)

// Poller is unavailable on this platform; New returns ErrUnsupported.
type Poller struct{}

// New returns ErrUnsupported: parking needs Linux epoll.
func New(Options) (*Poller, error) { return nil, ErrUnsupported }

// Park returns ErrUnsupported.
func (*Poller) Park(net.Conn, Source, bool, time.Time) error { return ErrUnsupported }

// Len returns 0.
func (*Poller) Len() int { return 0 }

// Close does nothing.
func (*Poller) Close(func() []byte) {}
