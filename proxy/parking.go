package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// errParked tells proxyError that modifyResponse handed the stream to the
// parker: there is nothing left to answer.
var errParked = errors.New("proxy: stream parked")

// streamHooks report what happens on a stream to the proxy's metrics and
// log.
type streamHooks struct {
	onBeat   func(sent bool)
	onEnd    func(midEvent bool, err error)
	onExpire func()
}

// parkHooks returns the hooks of rt's parked streams. They hold neither the
// request nor its context, which a parked stream does not keep.
func (p *Proxy) parkHooks(rt *route) *streamHooks {
	ctx := context.Background()
	return &streamHooks{
		onBeat:   func(sent bool) { p.beat(ctx, rt, sent) },
		onEnd:    func(mid bool, err error) { p.upstreamEnded(rt, mid, err) },
		onExpire: func() { p.expired(ctx, rt) },
	}
}

func (p *Proxy) beat(ctx context.Context, rt *route, sent bool) {
	if sent {
		p.m.heartbeats.WithLabelValues("sent").Inc()
		return
	}
	p.m.heartbeats.WithLabelValues("skipped_mid_event").Inc()
	p.log.LogAttrs(ctx, slog.LevelDebug, "heartbeat skipped: upstream stalled mid-event", slog.String("route", rt.Prefix))
}

func (p *Proxy) expired(ctx context.Context, rt *route) {
	p.log.LogAttrs(ctx, slog.LevelDebug, "token expired: ending the stream at the next event boundary",
		slog.String("route", rt.Prefix))
}

// parkStream hands a stream whose upstream response is conforming (res,
// its header already filtered) to the parker, which serves it from then on
// without a goroutine: the client's head is written and flushed, the
// client's connection hijacked, and the upstream's connection taken from
// its body. It reports false, having written nothing, when the stream
// cannot be parked; the handler then serves it as before.
func (p *Proxy) parkStream(ex *exchange, res *http.Response, expires time.Time) bool {
	ub, ok := res.Body.(*upstreamBody)
	if !ok || ex.w == nil || res.ProtoMajor != 1 {
		return false
	}
	up, pre, ok := ub.detach()
	if !ok {
		return false
	}
	res.Body = http.NoBody
	w := ex.w
	h := w.Header()
	for k, vv := range res.Header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	err := w.FlushError()
	// A deadline left on the connection would keep a timer, and through it
	// this request, alive for write_timeout after the stream is parked.
	w.done()
	var nc net.Conn
	if err == nil {
		nc, _, err = http.NewResponseController(w).Hijack()
	}
	if err != nil {
		up.Close()
		p.log.LogAttrs(ex.in.Context(), slog.LevelDebug, "stream not parked", slog.String("err", err.Error()))
		return true
	}
	r := newRelay(pre, ub.framing, ub.length, p.cfg.Heartbeat.D() > 0, expires, ex.route.hooks)
	if err := p.parker.park(nc, up, ex.in.ProtoMinor >= 1, r); err != nil {
		p.log.LogAttrs(ex.in.Context(), slog.LevelDebug, "stream not parked", slog.String("err", err.Error()))
	}
	return true
}
