package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/store"
	"github.com/sseguard/sseguard/store/bolt"
)

// crashFileEnv names the data file TestHelperProcess appends to; when it
// is unset, TestHelperProcess is skipped.
const crashFileEnv = "SSEGUARD_BOLT_CRASH_FILE"

// Bounds of the helper's loop, so that it stops by itself if the parent
// never kills it.
const (
	helperBatches = 20000
	helperTime    = 30 * time.Second
	helperBatch   = 8
)

// TestHelperProcess is not a test: TestCrash runs the test binary again
// with crashFileEnv set, and this appends batches in a loop, printing
// "id topic data key" for each record once Append has returned, until it is
// killed or its bounds run out.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashFileEnv)
	if path == "" {
		t.Skip("helper process of TestCrash")
	}
	s, err := bolt.Open(path, store.Retention{}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pid := os.Getpid()
	deadline := time.Now().Add(helperTime)
	for b := 0; b < helperBatches && time.Now().Before(deadline); b++ {
		recs := make([]store.Record, helperBatch)
		for i := range recs {
			recs[i] = store.Record{
				Topic:          fmt.Sprint("t", i%3),
				Data:           fmt.Sprintf("p%d-b%d-r%d", pid, b, i),
				IdempotencyKey: fmt.Sprintf("k%d-%d-%d", pid, b, i),
			}
		}
		got, err := s.Append(context.Background(), recs)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		var out bytes.Buffer
		for i, g := range got {
			fmt.Fprintf(&out, "%s %s %s %s\n", g.Event.ID, g.Event.Topic, recs[i].Data, recs[i].IdempotencyKey)
		}
		// One write per batch: the pipe takes it whole or not at all.
		if _, err := os.Stdout.Write(out.Bytes()); err != nil {
			os.Exit(4)
		}
	}
	os.Exit(0)
}

// printed is one record the helper reported as appended.
type printed struct {
	id, topic, data, key string
}

// TestCrash kills a process that appends in a loop with SIGKILL, several
// times over one file, and checks that every event whose Append returned
// is in the file afterwards, with its data and its idempotency key.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	path := filepath.Join(t.TempDir(), "events.db")
	var all []printed
	for round := range 3 {
		// Kill at a different point in the loop each round.
		killAfter := 40 + rand.IntN(400)
		got := crashOnce(t, path, killAfter)
		if len(got) < killAfter {
			t.Fatalf("round %d: helper printed %d records before it ended, want at least %d", round, len(got), killAfter)
		}
		t.Logf("round %d: killed after %d records", round, len(got))
		all = append(all, got...)
	}

	s := open(t, path, store.Retention{})
	defer s.Close()
	stored := map[string]store.Event{}
	after := ""
	ctx := context.Background()
	for {
		page, err := s.Read(ctx, []string{"t0", "t1", "t2"}, after, 500)
		if err != nil {
			t.Fatalf("Read after crashes: %v", err)
		}
		for _, ev := range page.Events {
			stored[ev.ID] = ev
		}
		if !page.More {
			break
		}
		after = page.Events[len(page.Events)-1].ID
	}
	for i, p := range all {
		ev, ok := stored[p.id]
		if !ok {
			t.Fatalf("event %s (%s) was acknowledged but is gone after SIGKILL", p.id, p.data)
		}
		if ev.Topic != p.topic || ev.Data != p.data {
			t.Fatalf("event %s = %s %q, want %s %q", p.id, ev.Topic, ev.Data, p.topic, p.data)
		}
		if i > 0 && s.Compare(all[i-1].id, p.id) != -1 {
			t.Errorf("ID %s acknowledged after %s", p.id, all[i-1].id)
		}
	}
	last := all[len(all)-1]
	again, err := s.Append(ctx, []store.Record{{Topic: last.topic, Data: last.data, IdempotencyKey: last.key}})
	if err != nil {
		t.Fatal(err)
	}
	if !again[0].Duplicate || again[0].Event.ID != last.id {
		t.Errorf("idempotency key of the last acknowledged event after SIGKILL: %+v, want a duplicate of %s", again[0], last.id)
	}
}

// crashOnce runs the helper on path, kills it once it printed killAfter
// records, and returns every complete record it printed.
func crashOnce(t *testing.T, path string, killAfter int) []printed {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashFileEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A stuck helper is killed all the same; the count check then fails.
	watchdog := time.AfterFunc(helperTime+10*time.Second, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	var got []printed
	r := bufio.NewReader(stdout)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if errors.Is(err, io.EOF) {
			break // a line cut by the kill has no newline: not acknowledged
		}
		if err != nil {
			t.Fatalf("reading helper output: %v", err)
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("helper printed %q", line)
		}
		got = append(got, printed{id: f[0], topic: f[1], data: f[2], key: f[3]})
		if !killed && len(got) >= killAfter {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill: %v", err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !killed || !errors.As(err, &exit) || exit.ExitCode() != -1 {
		t.Fatalf("helper ended with %v before it was killed; stderr:\n%s", err, stderr.String())
	}
	return got
}
