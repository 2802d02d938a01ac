package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// StartSentinel starts a Redis Sentinel on a free loopback port that
// monitors master under name, with quorum 1, and marks it down after 1 s
// of silence, so that a test's failover takes seconds. It is killed when
// tb ends.
func StartSentinel(tb testing.TB, name string, master *Server) *Server {
	tb.Helper()
	bin := Binary(tb)
	host, port, err := net.SplitHostPort(master.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{tb: tb, bin: bin, Dir: tb.TempDir(), sentinel: true}
	var last error
	for range 5 {
		p := freePort(tb)
		conf := strings.Join([]string{
			"bind 127.0.0.1",
			"port " + strconv.Itoa(p),
			"daemonize no",
			"dir " + s.Dir,
			"pidfile " + filepath.Join(s.Dir, "redis.pid"),
			"logfile " + filepath.Join(s.Dir, "redis.log"),
			fmt.Sprintf("sentinel monitor %s %s %s 1", name, host, port),
			fmt.Sprintf("sentinel down-after-milliseconds %s 1000", name),
			fmt.Sprintf("sentinel failover-timeout %s 5000", name),
		}, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(s.Dir, "redis.conf"), []byte(conf), 0o644); err != nil {
			tb.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if last = s.start(); last == nil {
			tb.Cleanup(s.Kill)
			return s
		}
	}
	tb.Fatalf("redis sentinel did not start: %v", last)
	return nil
}
