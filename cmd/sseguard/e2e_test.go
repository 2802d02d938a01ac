//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/sse"
)

// These tests run the real binary as a user would: built with the go tool,
// started as a process on loopback, stopped with signals.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// sseguardBinary builds the sseguard command once per test binary and returns
// its path. It skips in -short mode: building and running processes is slow.
func sseguardBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping end-to-end test in -short mode")
	}
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
		if err != nil {
			binErr = fmt.Errorf("finding the go tool: %w", err)
			return
		}
		if binDir, err = os.MkdirTemp("", "sseguard-e2e-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "sseguard")
		out, err := exec.Command(goTool, "build", "-o", binPath, "github.com/sseguard/sseguard/cmd/sseguard").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// childEnv is the test's environment without SSEGUARD_* variables, so that
// a developer's settings cannot change what the processes do.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SSEGUARD_") {
			env = append(env, kv)
		}
	}
	return env
}

// hubProcess is one running `sseguard serve`.
type hubProcess struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT, as printed
	stdout *eventually.Output
	stderr *eventually.Output
	done   chan struct{} // closed once the process has been waited for
	state  *os.ProcessState
}

// startServe starts `sseguard serve` on a free loopback port with data
// folder dir (and extra arguments) and waits for its getting-started text. The process is killed
// when the test ends, and its log is shown if the test failed.
func startServe(t *testing.T, bin, dir string, extra ...string) *hubProcess {
	t.Helper()
	h := &hubProcess{
		cmd:    exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", dir}, extra...)...),
		stdout: eventually.NewOutput(),
		stderr: eventually.NewOutput(),
		done:   make(chan struct{}),
	}
	h.cmd.Env = childEnv()
	h.cmd.Stdout, h.cmd.Stderr = h.stdout, h.stderr
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		_ = h.cmd.Wait()
		h.state = h.cmd.ProcessState
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("sseguard serve --data %s\nstdout:\n%s\nstderr:\n%s", dir, h.stdout, h.stderr)
		}
	})
	if err := h.stdout.WaitFor(20*time.Second, h.done, func(s string) bool {
		return strings.Contains(s, "Demo page:")
	}); err != nil {
		t.Fatalf("sseguard serve did not print its getting-started text: %v\nstdout:\n%s\nstderr:\n%s", err, h.stdout, h.stderr)
	}
	const listening = "sseguard is listening on "
	for line := range strings.Lines(h.stdout.String()) {
		if rest, ok := strings.CutPrefix(line, listening); ok {
			h.base = strings.TrimSpace(rest)
		}
	}
	if !strings.HasPrefix(h.base, "http://127.0.0.1:") {
		t.Fatalf("no %q line with a loopback URL in:\n%s", listening, h.stdout)
	}
	return h
}

// printedCurl returns the printed curl command line that mentions path.
func (h *hubProcess) printedCurl(t *testing.T, path string) string {
	t.Helper()
	for line := range strings.Lines(h.stdout.String()) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "curl ") && strings.Contains(line, h.base+path) {
			return line
		}
	}
	t.Fatalf("no curl command for %s in:\n%s", path, h.stdout)
	return ""
}

// signal sends sig and returns the process's exit state, or fails the test
// when the process does not exit within timeout.
func (h *hubProcess) signal(t *testing.T, sig os.Signal, timeout time.Duration) *os.ProcessState {
	t.Helper()
	if err := h.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v: %v", sig, err)
	}
	select {
	case <-h.done:
		return h.state
	case <-time.After(timeout):
		t.Fatalf("sseguard serve did not exit within %v of %v", timeout, sig)
		return nil
	}
}

// shellCommand runs line with sh, as a user pasting it would. The whole
// process group is killed when ctx ends, so a curl forked by sh dies too.
func shellCommand(ctx context.Context, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// requireCurl skips when curl is missing, except under CI=true.
func requireCurl(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("curl")
	if err == nil {
		_, err = exec.LookPath("sh")
	}
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("curl and sh are required under CI=true: %v", err)
	}
	t.Skipf("skipping: curl or sh not available: %v", err)
}

// streamHas reports whether the SSE text holds a complete event with this
// ID and data.
func streamHas(text, id, data string) bool {
	p := sse.NewParser(strings.NewReader(text))
	for {
		e, err := p.Next()
		if err != nil {
			return false
		}
		if e.ID == id && e.Data == data {
			return true
		}
	}
}

func TestServePrintedCommandsWork(t *testing.T) {
	bin := sseguardBinary(t)
	requireCurl(t)
	h := startServe(t, bin, t.TempDir())
	subLine, pubLine := h.printedCurl(t, "/events"), h.printedCurl(t, "/api/publish")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub := shellCommand(ctx, subLine)
	subOut, subErr := eventually.NewOutput(), eventually.NewOutput()
	sub.Stdout, sub.Stderr = subOut, subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	subDone := make(chan struct{})
	var subWaitErr error
	go func() { subWaitErr = sub.Wait(); close(subDone) }()
	t.Cleanup(func() { cancel(); <-subDone })

	// The stream's first bytes are its retry field, written once the
	// subscription is registered: from then on no publish is missed.
	if err := subOut.WaitFor(15*time.Second, subDone, func(s string) bool { return strings.Contains(s, "retry:") }); err != nil {
		t.Fatalf("the printed subscribe command did not open a stream: %v\ncommand: %s\nstdout: %q\nstderr: %q", err, subLine, subOut, subErr)
	}

	out, err := shellCommand(ctx, pubLine).Output()
	if err != nil {
		t.Fatalf("the printed publish command failed: %v\ncommand: %s\noutput: %s", err, pubLine, out)
	}
	var ack struct{ ID string }
	if err := json.Unmarshal(out, &ack); err != nil || ack.ID == "" {
		t.Fatalf("the printed publish command printed %q, want JSON with an id", out)
	}
	if err := subOut.WaitFor(15*time.Second, subDone, func(s string) bool { return streamHas(s, ack.ID, "hello") }); err != nil {
		t.Fatalf("event %s with data hello did not reach the subscribing curl: %v\nits output:\n%s", ack.ID, err, subOut)
	}

	if st := h.signal(t, syscall.SIGTERM, 15*time.Second); st.ExitCode() != 0 {
		t.Errorf("after SIGTERM: %v, want exit status 0", st)
	}
	// The server ends the stream when it stops, so curl ends on its own.
	select {
	case <-subDone:
		if subWaitErr != nil {
			t.Errorf("the subscribing curl ended with %v; stderr %q", subWaitErr, subErr)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the subscribing curl still runs after the server stopped")
	}
}

// pollEvent is one event of a GET /api/poll answer.
type pollEvent struct {
	ID, Topic, Data string
}

// hubClient talks to a hub over HTTP with one token.
type hubClient struct {
	http  *http.Client
	base  string
	token string
}

// publish posts one event to topic demo and returns its ID, or an error
// for anything but a 201.
func (c *hubClient) publish(ctx context.Context, data string) (string, error) {
	body, _ := json.Marshal(map[string]string{"topic": "demo", "data": data})
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("publish: %s: %s", res.Status, b)
	}
	var ack struct{ ID string }
	if err := json.Unmarshal(b, &ack); err != nil || ack.ID == "" {
		return "", fmt.Errorf("publish: 201 with body %q", b)
	}
	return ack.ID, nil
}

// poll reads the events of topic demo after the cursor, following next
// until a page is empty.
func (c *hubClient) poll(t *testing.T, after string) []pollEvent {
	t.Helper()
	var all []pollEvent
	for range 10000 {
		req, _ := http.NewRequest("GET", c.base+"/api/poll?topic=demo&after="+url.QueryEscape(after), nil)
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.token)
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var ans struct {
			Events []pollEvent
			Next   string
			Reset  *struct{ Reason, Detail string }
		}
		err = json.NewDecoder(res.Body).Decode(&ans)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("poll after %q: %s, decode: %v", after, res.Status, err)
		}
		if ans.Reset != nil {
			t.Fatalf("poll after %q: reset %+v", after, *ans.Reset)
		}
		if len(ans.Events) == 0 {
			return all
		}
		all = append(all, ans.Events...)
		after = ans.Next
	}
	t.Fatal("poll never reached the end")
	return nil
}

func mintToken(t *testing.T, bin, dir string) string {
	t.Helper()
	cmd := exec.Command(bin, "token", "--data", dir, "--publish", "demo", "--subscribe", "*", "--ttl", "1h")
	cmd.Env = childEnv()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("sseguard token: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("sseguard token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestKill9LosesNoAcknowledgedPublish(t *testing.T) {
	const (
		publishers  = 16
		maxPublish  = 3000
		maxDuration = 10 * time.Second
		killAfter   = 1000 // acknowledged publishes, so the kill lands mid-burst
	)
	bin := sseguardBinary(t)
	dir := t.TempDir()
	h := startServe(t, bin, dir)
	tr := &http.Transport{MaxIdleConnsPerHost: publishers}
	defer tr.CloseIdleConnections()
	c := &hubClient{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, base: h.base, token: mintToken(t, bin, dir)}

	var (
		mu      sync.Mutex
		acked   = map[string]string{} // ID → data
		ackedN  atomic.Int64
		tried   atomic.Int64
		killed  atomic.Bool
		reached = make(chan struct{})
		wg      sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), maxDuration)
	defer cancel()
	begin := time.Now()
	for w := range publishers {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil && tried.Add(1) <= maxPublish; n++ {
				data := fmt.Sprintf("publisher %d, event %d", w, n)
				id, err := c.publish(ctx, data)
				if err != nil {
					if !killed.Load() && ctx.Err() == nil {
						t.Errorf("publish before the kill: %v", err)
					}
					return
				}
				mu.Lock()
				if prev, dup := acked[id]; dup {
					t.Errorf("ID %s acknowledged twice: for %q and %q", id, prev, data)
				}
				acked[id] = data
				mu.Unlock()
				if ackedN.Add(1) == killAfter {
					close(reached)
				}
			}
		})
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	select {
	case <-reached:
	case <-allDone:
	case <-ctx.Done():
	}
	killed.Store(true)
	inFlight := tried.Load() < maxPublish
	burst := time.Since(begin)
	st := h.signal(t, syscall.SIGKILL, 10*time.Second)
	<-allDone
	cancel()
	t.Logf("killed (%v) after %v: %d publishes acknowledged, %d started; burst still running: %v", st, burst.Round(time.Millisecond), len(acked), min(tried.Load(), maxPublish), inFlight)
	if len(acked) == 0 {
		t.Fatal("no publish was acknowledged before the kill")
	}
	if !inFlight {
		t.Log("the burst ended before the kill; the test then only checks a restart")
	}

	h2 := startServe(t, bin, dir)
	c.base = h2.base
	got := c.poll(t, "")
	seen := make(map[string]string, len(got))
	for i, e := range got {
		if _, dup := seen[e.ID]; dup {
			t.Errorf("ID %s replayed twice", e.ID)
		}
		seen[e.ID] = e.Data
		if e.Topic != "demo" {
			t.Errorf("event %d: topic %q, want demo", i, e.Topic)
		}
	}
	var lost int
	for id, data := range acked {
		d, ok := seen[id]
		switch {
		case !ok:
			lost++
			if lost <= 10 {
				t.Errorf("acknowledged publish %s (%q) is missing after the restart", id, data)
			}
		case d != data:
			t.Errorf("event %s: data %q after the restart, acknowledged with %q", id, d, data)
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged publishes lost", lost, len(acked))
	}
	t.Logf("%d acknowledged, %d replayed after the restart", len(acked), len(got))

	// Poll answers in ID order, so a new event that follows the last stored
	// one has the greatest ID: IDs did not restart or go back.
	if len(got) == 0 {
		t.Fatal("nothing to replay after the restart")
	}
	last := got[len(got)-1].ID
	id, err := c.publish(context.Background(), "after the restart")
	if err != nil {
		t.Fatal(err)
	}
	if _, reused := seen[id]; reused {
		t.Fatalf("the first publish after the restart reused ID %s", id)
	}
	after := c.poll(t, last)
	if len(after) != 1 || after[0].ID != id || after[0].Data != "after the restart" {
		t.Fatalf("events after %s, the last before the restart: %+v; want only the new event %s", last, after, id)
	}
}

func TestServeShutdownTellsStreamsToRetry(t *testing.T) {
	bin := sseguardBinary(t)
	h := startServe(t, bin, t.TempDir())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", h.base+"/events?topic=demo", nil)
	req.Header.Set("Accept", "text/event-stream")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /events: %s", res.Status)
	}
	r := bufio.NewReader(res.Body)
	first, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "retry:") {
		t.Fatalf("first line of the stream %q, %v; want its retry field", first, err)
	}

	// The rest of the stream is read concurrently: SIGTERM must not wait
	// for the client.
	type ending struct {
		text string
		err  error
	}
	ended := make(chan ending, 1)
	go func() {
		b, err := io.ReadAll(r)
		ended <- ending{string(b), err}
	}()
	if st := h.signal(t, syscall.SIGTERM, 15*time.Second); st.ExitCode() != 0 {
		t.Errorf("after SIGTERM: %v, want exit status 0", st)
	}
	var e ending
	select {
	case e = <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream is still open after the server exited")
	}
	if e.err != nil {
		t.Errorf("the stream ended with %v, want a clean end of the response; got %q", e.err, e.text)
	}
	var retry bool
	for line := range strings.Lines(e.text) {
		retry = retry || strings.HasPrefix(line, "retry:")
	}
	if !retry {
		t.Errorf("after SIGTERM the stream sent %q, want a retry field before it ended", e.text)
	}
}
