package bench

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values func(i int) time.Duration
		n      int
	}{
		{name: "exact small values", n: 200, values: func(i int) time.Duration { return time.Duration(i) }},
		{name: "milliseconds", n: 10000, values: func(i int) time.Duration { return time.Duration(i) * 37 * time.Microsecond }},
		{name: "random spread", n: 5000, values: func(int) time.Duration { return time.Duration(rand.Int64N(int64(10 * time.Second))) }},
		{name: "one value", n: 1, values: func(int) time.Duration { return 112 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			vals := make([]time.Duration, tt.n)
			for i := range vals {
				vals[i] = tt.values(i)
				h.record(vals[i])
			}
			slices.Sort(vals)
			for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
				exact := vals[max(0, int(math.Ceil(q*float64(len(vals))))-1)]
				got := h.quantile(q)
				if got < exact || float64(got-exact) > float64(exact)/128+1 {
					t.Errorf("q%v = %v, exact %v: more than 0.8%% off", q, got, exact)
				}
			}
			if got, want := time.Duration(h.max.Load()), vals[len(vals)-1]; got != want {
				t.Errorf("max %v, want %v", got, want)
			}
		})
	}
}

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1e6, 1e9, math.MaxInt64 / 3, math.MaxInt64} {
		i := bucketOf(v)
		if i < 0 || i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if up := upperOf(i); up < v || (i > 0 && upperOf(i-1) >= v) {
			t.Errorf("value %d in bucket %d whose range ends at %d (previous %d)", v, i, up, upperOf(i-1))
		}
	}
}

func TestParseSources(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name    string
		in      string
		want    []netip.Addr
		wantErr string
	}{
		{name: "empty", in: ""},
		{name: "one", in: "127.0.0.2", want: []netip.Addr{a("127.0.0.2")}},
		{name: "list", in: "127.0.0.1, 127.0.0.5", want: []netip.Addr{a("127.0.0.1"), a("127.0.0.5")}},
		{name: "short range", in: "127.0.0.1-3", want: []netip.Addr{a("127.0.0.1"), a("127.0.0.2"), a("127.0.0.3")}},
		{name: "full range", in: "127.0.1.9-127.0.1.10", want: []netip.Addr{a("127.0.1.9"), a("127.0.1.10")}},
		{name: "range across /24s", in: "127.0.0.255-127.0.1.1", want: []netip.Addr{a("127.0.0.255"), a("127.0.1.0"), a("127.0.1.1")}},
		{name: "IPv6 loopback", in: "::1", want: []netip.Addr{a("::1")}},
		{name: "not loopback", in: "10.0.0.1", wantErr: "loopback"},
		{name: "range start not loopback", in: "192.168.0.1-4", wantErr: "loopback"},
		{name: "backwards range", in: "127.0.0.5-2", wantErr: "runs up"},
		{name: "range leaving loopback", in: "127.255.255.254-128.0.0.1", wantErr: "127.0.0.0/8"},
		{name: "too many", in: "127.0.0.1-127.1.0.1", wantErr: "more than 65536"},
		{name: "garbage", in: "localhost", wantErr: "sources"},
		{name: "bad end", in: "127.0.0.1-x", wantErr: "last byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSources(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := ParseSources("10.0.0.1"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("non-loopback source: %v, want ErrNotLoopback", err)
	}
}

func TestCompareIDs(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "2", -1},
		{"10", "9", 1},
		{"0010", "9", 1},
		{"007", "7", 0},
		{"a", "b", -1},
		{"01HZX", "01HZW", 1},
		{"9", "a", -1},
		// store/redis IDs of one topic: hash.epoch.offset, whose offsets
		// string order gets wrong from 9 to 10.
		{"AbCdEfGhIjK.xYz01.10", "AbCdEfGhIjK.xYz01.9", 1},
		{"AbCdEfGhIjK.xYz01.9", "AbCdEfGhIjK.xYz01.10", -1},
		{"AbCdEfGhIjK.xYz01.10", "AbCdEfGhIjK.xYz01.10", 0},
		{"3.9", "3.10", -1}, // memory.Shared: topic.offset
	}
	for _, tt := range tests {
		t.Run(tt.a+" vs "+tt.b, func(t *testing.T) {
			if got := compareIDs(tt.a, tt.b); got != tt.want {
				t.Errorf("compareIDs = %d, want %d", got, tt.want)
			}
			if got := compareIDBytes([]byte(tt.a), []byte(tt.b)); got != tt.want {
				t.Errorf("compareIDBytes = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPayload(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		seq, sent int64
		ok        bool
	}{
		{name: "built", data: string(appendPayload(nil, 42, 1764000000123456789, 0)), seq: 42, sent: 1764000000123456789, ok: true},
		{name: "padded", data: string(appendPayload(nil, 7, 99, 5)), seq: 7, sent: 99, ok: true},
		{name: "foreign", data: `{"tick":1}`},
		{name: "truncated", data: `{"seq":1,"sent":`},
		{name: "overflow", data: `{"seq":1,"sent":99999999999999999999}`},
		{name: "trailing junk", data: `{"seq":1,"sent":2x}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, sent, ok := parsePayload([]byte(tt.data))
			if ok != tt.ok || seq != tt.seq || sent != tt.sent {
				t.Errorf("parsePayload(%q) = %d, %d, %v; want %d, %d, %v", tt.data, seq, sent, ok, tt.seq, tt.sent, tt.ok)
			}
		})
	}
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		rss     int64
		cpu     time.Duration
		fds     int64
		wantErr bool
	}{
		{
			name: "client_golang output",
			in: "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n" +
				"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n" +
				"# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 2.62144e+07\n" +
				"process_resident_memory_bytes_other 1\n",
			rss: 26214400, cpu: 12500 * time.Millisecond, fds: -1,
		},
		{
			name: "open files",
			in:   "process_cpu_seconds_total 1\nprocess_resident_memory_bytes 1024\nprocess_open_fds 17\n",
			rss:  1024, cpu: time.Second, fds: 17,
		},
		{
			name: "labels and timestamp",
			in:   "process_cpu_seconds_total{job=\"x\"} 1 1700000000000\nprocess_resident_memory_bytes{a=\"b c\"} 1024\n",
			rss:  1024, cpu: time.Second, fds: -1,
		},
		{name: "missing cpu", in: "process_resident_memory_bytes 1\n", wantErr: true},
		{name: "bad value", in: "process_resident_memory_bytes x\nprocess_cpu_seconds_total 1\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseMetrics(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (s.rss != tt.rss || s.cpu != tt.cpu || s.fds != tt.fds) {
				t.Errorf("got rss %d cpu %v fds %d, want %d %v %d", s.rss, s.cpu, s.fds, tt.rss, tt.cpu, tt.fds)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	rss, err := parseVmRSS([]byte("Name:\tx\nVmRSS:\t   26536 kB\nVmData: 1 kB\n"))
	if err != nil || rss != 26536*1024 {
		t.Errorf("parseVmRSS = %d, %v", rss, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Error("parseVmRSS without VmRSS: no error")
	}
	stat := "1234 (we(ird) na me) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1000 10"
	cpu, err := parseStatCPU([]byte(stat))
	if err != nil || cpu != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", cpu, err)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1")); err == nil {
		t.Error("short stat: no error")
	}
	if s, err := readProc("self"); err != nil || s.rss <= 0 || s.anon <= 0 || s.anon > s.rss || s.hwm < s.rss || s.fds != -1 {
		t.Errorf("readProc(self) = %+v, %v; want rss, its anonymous part, its high-water mark, no file count", s, err)
	}
	if anon, err := statusKB([]byte("VmRSS:\t 300 kB\nRssAnon:\t 120 kB\nRssFile:\t 180 kB\n"), "RssAnon:"); err != nil || anon != 120*1024 {
		t.Errorf("statusKB RssAnon = %d, %v", anon, err)
	}
	s, err := procSampler{pid: os.Getpid(), fds: true}.sample(context.Background())
	if err != nil || s.fds < 3 {
		t.Errorf("procSampler with files = %+v, %v; want stdin, stdout, stderr at least", s, err)
	}
}

func TestPeakWithHWM(t *testing.T) {
	tests := []struct {
		name       string
		sampled    int64
		start, end sample
		want       int64
	}{
		{name: "mark rose: the exact peak", sampled: 50, start: sample{rss: 10, hwm: 40}, end: sample{rss: 30, hwm: 90}, want: 90},
		{name: "mark did not rise: the samples", sampled: 50, start: sample{rss: 10, hwm: 100}, end: sample{rss: 30, hwm: 100}, want: 50},
		{name: "no mark", sampled: 50, start: sample{rss: 10}, end: sample{rss: 30}, want: 50},
		{name: "never under the start", sampled: 5, start: sample{rss: 10}, want: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (peakSamples{rss: tt.sampled, n: 1}).withHWM(tt.end, tt.start); got != tt.want {
				t.Errorf("peak %d, want %d", got, tt.want)
			}
		})
	}
}

func TestPadFor(t *testing.T) {
	for _, total := range []int{MinDataBytes, 1000, 16 << 10, 64 << 10} {
		for _, seq := range []int64{0, 9, 12345, MaxEvents - 1} {
			sent := time.Now().UnixNano()
			data := appendPayload(nil, seq, sent, padFor(seq, sent, total))
			if len(data) != total {
				t.Errorf("seq %d, total %d: data is %d bytes", seq, total, len(data))
			}
			if gotSeq, gotSent, ok := parsePayload(data); !ok || gotSeq != seq || gotSent != sent {
				t.Errorf("seq %d, total %d: parsed %d, %d, %v", seq, total, gotSeq, gotSent, ok)
			}
		}
	}
}
