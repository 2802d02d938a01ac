// Package redistest runs real redis-server processes for tests: each on a
// free loopback port, with its own folder for its configuration, pid file,
// log and data, stopped (or killed, or restarted on the same port and data)
// by the test, and always killed when the test ends. It also builds a Redis
// Cluster of several masters from such processes with redis-cli --cluster
// create.
//
// StartSentinel adds a Sentinel that watches a server.
//
// A test that calls Start or StartCluster on a machine without redis-server
// (or redis-cli, for a cluster) is skipped with a message saying what to
// install, except under CI=true, where it fails: CI installs both.
//
// Package redistest is for tests only; it never touches a Redis it did not
// start (such as a system one on 6379).
package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING after it
// was started (an AOF replay included).
const startTimeout = 30 * time.Second

// Options configure one server. The zero value is a server that keeps
// nothing on disk: a restart loses every key.
type Options struct {
	// AppendOnly turns the AOF on, with appendfsync set to Fsync.
	AppendOnly bool
	// Fsync is appendfsync: "always", "everysec" (the default) or "no".
	Fsync string
	// Config holds more redis.conf lines, such as "maxmemory 10mb".
	Config []string
}

// Server is one redis-server process that a test started.
type Server struct {
	// Addr is host:port on 127.0.0.1.
	Addr string
	// Dir holds redis.conf, redis.pid, redis.log and the data files.
	Dir string

	tb       testing.TB
	bin      string
	sentinel bool // run with --sentinel

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Binary returns the path of redis-server, or skips tb (fails it under
// CI=true) when it is not installed.
func Binary(tb testing.TB) string {
	tb.Helper()
	return lookPath(tb, "redis-server", "redis-server")
}

func lookPath(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s not found, and CI=true: .ci/run installs Debian's %s package", name, pkg)
	}
	tb.Skipf("%s not found: install Debian's %s package (apt-get install %s) to run this test", name, pkg, pkg)
	return ""
}

// Start starts a standalone redis-server on a free loopback port and waits
// until it answers PING. It is killed when tb ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	bin := Binary(tb)
	s := &Server{tb: tb, bin: bin, Dir: tb.TempDir()}
	s.startOnFreePort(o, nil)
	return s
}

// startOnFreePort picks a free port (and a second one for the cluster bus
// when cluster is not nil), writes redis.conf and starts the server,
// trying again with other ports when another process took one first.
func (s *Server) startOnFreePort(o Options, cluster []string) {
	s.tb.Helper()
	var last error
	for range 5 {
		port := freePort(s.tb)
		lines := config(s.Dir, port, o)
		if cluster != nil {
			lines = append(lines, cluster...)
			lines = append(lines, fmt.Sprintf("cluster-port %d", freePort(s.tb)))
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "redis.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			s.tb.Fatal(err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if last = s.start(); last == nil {
			s.tb.Cleanup(s.Kill)
			return
		}
	}
	s.tb.Fatalf("redis-server did not start: %v", last)
}

func config(dir string, port int, o Options) []string {
	fsync := o.Fsync
	if fsync == "" {
		fsync = "everysec"
	}
	aof := "no"
	if o.AppendOnly {
		aof = "yes"
	}
	lines := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"protected-mode yes",
		"daemonize no",
		"dir " + dir,
		"pidfile " + filepath.Join(dir, "redis.pid"),
		"logfile " + filepath.Join(dir, "redis.log"),
		`save ""`,
		"appendonly " + aof,
		"appendfsync " + fsync,
	}
	return append(lines, o.Config...)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs redis-server on the configuration in Dir and waits for PING.
func (s *Server) start() error {
	args := []string{filepath.Join(s.Dir, "redis.conf")}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(s.bin, args...)
	// The server must not outlive a test binary that dies without running
	// its cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	pause := time.Millisecond
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", s.logTail())
		default:
		}
		// The server must be ours (when another process took the port
		// first, ours exits, and the answer comes from that one: another
		// test's Redis), and done loading its data: INFO answers while
		// it loads, PING answers PONG only once the data is loaded.
		reply, err := Do(s.Addr, "INFO", "server")
		if err == nil && !strings.Contains(reply, "process_id:"+strconv.Itoa(cmd.Process.Pid)+"\r\n") {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("%s is another process's Redis", s.Addr)
		}
		if err == nil {
			if reply, err = Do(s.Addr, "PING"); err == nil && reply == "PONG" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("no answer from %s after %v (%v): %s", s.Addr, startTimeout, err, s.logTail())
		}
		time.Sleep(pause) // polling a condition, not synchronising on time
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// logTail returns the end of the server's log, for error messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Stop shuts the server down as an operator would (SIGTERM: it writes its
// AOF, and an RDB only when save points are configured) and waits for it to
// exit. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. Killing a stopped server does nothing.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	// A frozen server must run again to act on SIGTERM.
	_ = cmd.Process.Signal(syscall.SIGCONT)
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
		s.tb.Errorf("redis-server %s ignored %v for %v; killed", s.Addr, sig, startTimeout)
	}
}

// Restart starts the server again on the same port, configuration and
// data folder, after Stop or Kill, and waits until it answers PING (after
// loading what it kept). It fails the test when the server is running.
func (s *Server) Restart() {
	s.tb.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	select {
	case <-done:
	default:
		s.tb.Fatalf("Restart of %s, which is running: Stop or Kill it first", s.Addr)
	}
	// The port may stay taken for a moment by another process; a few tries.
	var err error
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	s.tb.Fatalf("restart %s: %v", s.Addr, err)
}

// Freeze stops the process with SIGSTOP: connections open and the kernel
// still accepts new ones, but nothing answers, as with a hung server or a
// partitioned network. Thaw resumes it.
func (s *Server) Freeze() { s.sendSignal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.sendSignal(syscall.SIGCONT) }

func (s *Server) sendSignal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Do sends one command to s and returns its reply (see the package-level Do).
func (s *Server) Do(args ...string) (string, error) { return Do(s.Addr, args...) }

// Do sends one command to the Redis at addr on a new connection and returns
// its reply as text: a simple string or bulk string as is, an integer in
// decimal, an array's elements one per line, nil as "". A Redis error
// reply is returned as an error. It is for test setup and checks, not
// for load.
func Do(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch body := line[1:]; line[0] {
	case '+', ':':
		return body, nil
	case '-':
		return "", errors.New(body)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < 0 {
			return "", err
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, "\n"), nil
	default:
		return "", fmt.Errorf("unexpected reply %q", line)
	}
}
