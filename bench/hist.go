package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram records durations in a fixed, lock-free, log-linear layout (as
// HdrHistogram does): values below 2^subBits ns are exact; above, each power
// of two is cut into 2^(subBits-1) buckets, so a reported value is within
// 1/2^(subBits-1) (0.8 %) of the true one. Its memory is fixed (about 60 KB)
// whatever the number of samples; the count, sum and max are exact.
type histogram struct {
	buckets [numBuckets]atomic.Uint64
	count   atomic.Uint64
	sum     atomic.Uint64 // nanoseconds
	max     atomic.Int64  // nanoseconds
}

const (
	subBits    = 8
	subCount   = 1 << subBits // exact values below this
	halfCount  = subCount / 2 // buckets per power of two above it
	numBuckets = subCount + (64-subBits)*halfCount
)

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - subBits // ≥ 1
	top := int(uint64(v) >> uint(shift))     // in [halfCount, subCount)
	return subCount + (shift-1)*halfCount + (top - halfCount)
}

// upperOf returns the largest value that falls in bucket i.
func upperOf(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	i -= subCount
	shift := i/halfCount + 1
	top := uint64(i%halfCount + halfCount)
	u := (top+1)<<uint(shift) - 1
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0 // clocks are one clock here, but never index out of range
	}
	h.buckets[bucketOf(v)].Add(1)
	h.count.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// quantile returns the value at quantile q in [0, 1]: the upper end of the
// bucket that holds it, capped at the exact max.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= rank {
			return min(time.Duration(upperOf(i)), time.Duration(h.max.Load()))
		}
	}
	return time.Duration(h.max.Load())
}

// summary returns the histogram's percentiles in milliseconds.
func (h *histogram) summary() Latency {
	n := h.count.Load()
	if n == 0 {
		return Latency{}
	}
	return Latency{
		Count: int64(n),
		Mean:  ms(time.Duration(h.sum.Load() / n)),
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		P999:  ms(h.quantile(0.999)),
		Max:   ms(time.Duration(h.max.Load())),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
