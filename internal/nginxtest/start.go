package nginxtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Start runs nginx (the binary bin) with the site that site returns for
// addr, a free loopback address it picks, and returns addr once nginx
// accepts connections there; nginx is stopped when the test ends. A start
// that fails (another process took the port in between) is tried again
// on another address, three times in all, before the test fails with
// nginx's output and error log.
func Start(t testing.TB, bin string, site func(addr string) string, workerConnections int) string {
	t.Helper()
	var lastErr error
	for range 3 {
		addr, err := start(t, bin, site, workerConnections)
		if err == nil {
			return addr
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return ""
}

func start(t testing.TB, bin string, site func(addr string) string, workerConnections int) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cmd, err := Command(bin, dir, site(addr), workerConnections)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Poll until nginx accepts, or exits, for at most 10 s.
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			return "", fmt.Errorf("nginx exited: %v\n%s%s", err, out.String(), log)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return "", errors.New("nginx did not listen within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return addr, nil
}
