package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// sample is the server's resident memory and its CPU time so far.
type sample struct {
	rss int64         // bytes
	cpu time.Duration // user + system
	// anon is the anonymous part of rss (heap, stacks), without the
	// store's memory-mapped file pages; 0 when the source lacks it.
	anon int64
	// hwm is the peak rss over the process's life (VmHWM); 0 when the
	// source lacks it.
	hwm int64
	// fds is the number of open files, or -1 when not read.
	fds int64
}

// sampler reads a process's memory and CPU time, from /proc or from a
// Prometheus endpoint.
type sampler interface {
	sample(ctx context.Context) (sample, error)
	source() string
}

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 on every architecture Go runs on.
const userHZ = 100

type procSampler struct {
	pid int
	fds bool // count open files too (a replay run watches them)
}

func (p procSampler) source() string { return "pid " + strconv.Itoa(p.pid) }

func (p procSampler) sample(context.Context) (sample, error) {
	s, err := readProc(strconv.Itoa(p.pid))
	if err != nil || !p.fds {
		return s, err
	}
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(p.pid) + "/fd")
	if err != nil {
		return s, fmt.Errorf("count open files: %w", err)
	}
	s.fds = int64(len(ents))
	return s, nil
}

// readProc reads /proc/PID/status VmRSS and /proc/PID/stat utime and stime;
// pid "self" reads the calling process.
func readProc(pid string) (sample, error) {
	s := sample{fds: -1}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return s, fmt.Errorf("read process memory: %w", err)
	}
	rss, err := parseVmRSS(status)
	if err != nil {
		return s, fmt.Errorf("/proc/%s/status: %w", pid, err)
	}
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return s, fmt.Errorf("read process CPU time: %w", err)
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		return s, fmt.Errorf("/proc/%s/stat: %w", pid, err)
	}
	s.rss, s.cpu = rss, cpu
	// RssAnon is missing before Linux 4.5: then anon stays 0.
	s.anon, _ = statusKB(status, "RssAnon:")
	s.hwm, _ = statusKB(status, "VmHWM:")
	return s, nil
}

func parseVmRSS(status []byte) (int64, error) { return statusKB(status, "VmRSS:") }

// statusKB reads the field of /proc/PID/status named by prefix, in kB,
// and returns it in bytes.
func statusKB(status []byte, prefix string) (int64, error) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(prefix))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("unexpected %s line %q", prefix, line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s %w", prefix, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line", strings.TrimSuffix(prefix, ":"))
}

func parseStatCPU(stat []byte) (time.Duration, error) {
	// The command name, in parentheses, may hold spaces and parentheses;
	// the fields that follow the last ')' start at field 3 (state).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := strings.Fields(string(stat[i+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("%d fields, want more than %d", len(f)+2, stime+2)
	}
	u, err1 := strconv.ParseInt(f[utime], 10, 64)
	s, err2 := strconv.ParseInt(f[stime], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("utime, stime: %w", err)
	}
	return time.Duration(u+s) * time.Second / userHZ, nil
}

// metricsSampler reads process_resident_memory_bytes and
// process_cpu_seconds_total from a Prometheus text exposition.
type metricsSampler struct {
	url    string
	client *http.Client
	token  string // sent only when the endpoint is the target itself
}

func newMetricsSampler(ctx context.Context, raw string, target *url.URL, token string) (*metricsSampler, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, configErrorf("MetricsURL: %w", err)
	}
	if u.Scheme != "http" || u.Hostname() == "" {
		return nil, configErrorf("MetricsURL %q: want http://host:port/path", raw)
	}
	addr, err := resolveLoopback(ctx, u, netip.Addr{})
	if err != nil {
		return nil, configErrorf("MetricsURL: %w", err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", addr.String())
		},
		DisableKeepAlives:  true,
		DisableCompression: false,
	}
	m := &metricsSampler{url: u.String(), client: &http.Client{
		Transport: tr,
		Timeout:   10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
	if u.Host == target.Host {
		m.token = token
	}
	return m, nil
}

func (m *metricsSampler) source() string { return m.url }

func (m *metricsSampler) sample(ctx context.Context) (sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return sample{}, fmt.Errorf("metrics: %w", err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	if m.token != "" {
		req.Header.Set("Authorization", "Bearer "+m.token)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return sample{}, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("metrics: %s answered %s", m.url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20))
}

// parseMetrics reads the process gauges from a Prometheus text
// exposition: resident memory and CPU time, and open files when present.
// It reads no other metric, so a line parser is enough.
func parseMetrics(r io.Reader) (sample, error) {
	s := sample{fds: -1}
	var haveRSS, haveCPU bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		name, rest, ok := metricLine(line)
		if !ok {
			continue
		}
		switch name {
		case "process_resident_memory_bytes":
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return s, fmt.Errorf("metrics: %s: %w", name, err)
			}
			s.rss, haveRSS = int64(v), true
		case "process_cpu_seconds_total":
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return s, fmt.Errorf("metrics: %s: %w", name, err)
			}
			s.cpu, haveCPU = time.Duration(v*float64(time.Second)), true
		case "process_open_fds":
			if v, err := strconv.ParseFloat(rest, 64); err == nil {
				s.fds = int64(v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("metrics: %w", err)
	}
	if !haveRSS || !haveCPU {
		return s, errors.New("metrics: process_resident_memory_bytes or process_cpu_seconds_total missing")
	}
	return s, nil
}

// metricLine splits a sample line into its metric name and value, dropping
// labels and a timestamp. Comments and blank lines are not samples.
func metricLine(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false
	}
	end := strings.IndexAny(line, "{ \t")
	if end < 0 {
		return "", "", false
	}
	name, rest := line[:end], line[end:]
	if rest[0] == '{' {
		close := strings.IndexByte(rest, '}')
		if close < 0 {
			return "", "", false
		}
		rest = rest[close+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", "", false
	}
	return name, f[0], true
}
