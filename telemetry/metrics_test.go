package telemetry

import (
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestConnectedByTransport checks that open streams, connects and
// disconnects are counted per transport, and that a long poll's end is not
// a disconnect.
func TestConnectedByTransport(t *testing.T) {
	m := New(SpikeOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)), func() Counters { return Counters{} })
	endWS := m.Connected(TransportWS)
	endSSE := m.Connected(TransportSSE)
	endPoll := m.Connected(TransportPoll)
	for _, tr := range []string{TransportWS, TransportSSE, TransportPoll} {
		if got := value(m.openStreams.WithLabelValues(tr)); got != 1 {
			t.Errorf("open %s = %g, want 1", tr, got)
		}
	}
	endWS(ReasonPolicy)
	endWS(ReasonCutOff) // counted once
	endSSE(ReasonCutOff)
	endPoll(ReasonClientGone)
	cases := []struct {
		transport, reason string
		want              float64
	}{
		{TransportWS, ReasonPolicy, 1},
		{TransportWS, ReasonCutOff, 0},
		{TransportSSE, ReasonCutOff, 1},
		{TransportSSE, ReasonPolicy, 0},
	}
	for _, c := range cases {
		if got := value(m.disconnects.WithLabelValues(c.transport, c.reason)); got != c.want {
			t.Errorf("disconnects{%s,%s} = %g, want %g", c.transport, c.reason, got, c.want)
		}
	}
	if got := value(m.disconnects.WithLabelValues(TransportPoll, ReasonClientGone)); got != 0 {
		t.Errorf("a long poll's end counted as a disconnect: %g", got)
	}
	for _, tr := range []string{TransportWS, TransportSSE, TransportPoll} {
		if got := value(m.openStreams.WithLabelValues(tr)); got != 0 {
			t.Errorf("open %s = %g after the end, want 0", tr, got)
		}
	}
}

// value reads a gauge or counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}
