//go:build !linux

package proxy

import (
	"errors"
	"net"
	"time"
)

// parker parks streams on Linux only; elsewhere newParker fails and every
// stream is served from its handler.
type parker struct{}

type relay struct{}

func newParker(time.Duration, time.Duration) (*parker, error) {
	return nil, errors.New("parking streams is supported on Linux only")
}

func newRelay([]byte, int, int64, bool, time.Time, *streamHooks) *relay { return &relay{} }

func (*parker) park(client, upstream net.Conn, _ bool, _ *relay) error {
	client.Close()
	upstream.Close()
	return errors.New("parking streams is supported on Linux only")
}

func (*parker) close(time.Duration) {}

func (*parker) count() int { return 0 }
