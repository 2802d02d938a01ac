package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sseguard/sseguard/internal/eventually"
	"github.com/sseguard/sseguard/internal/redistest"
	"github.com/sseguard/sseguard/store"
)

// TestUnavailableIsPrompt: with Redis killed or hung (SIGSTOP: the kernel
// still accepts connections, nothing answers), every call returns an
// error wrapping ErrUnavailable within the client's timeouts, never a
// hang; once Redis is back the store works again.
func TestUnavailableIsPrompt(t *testing.T) {
	const bound = 5 * time.Second // ReadTimeout 2s, DialTimeout 1s, plus slack
	tests := []struct {
		name        string
		fail, mend  func(s *redistest.Server)
		persistence redistest.Options
	}{
		{"killed", (*redistest.Server).Kill, (*redistest.Server).Restart, redistest.Options{AppendOnly: true, Fsync: "always"}},
		{"hung", (*redistest.Server).Freeze, (*redistest.Server).Thaw, redistest.Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, tt.persistence)
			s := openStore(t, Config{Client: testClient(srv.Addr)})
			first := mustAppend(t, s, store.Record{Topic: "a", Data: "1"})[0].Event
			tt.fail(srv)
			ctx := context.Background()
			calls := []struct {
				name string
				call func() error
			}{
				{"Append", func() error { _, err := s.Append(ctx, []store.Record{{Topic: "a", Data: "2"}}); return err }},
				{"Read", func() error { _, err := s.Read(ctx, []string{"a"}, first.ID, 0); return err }},
				{"Head", func() error { _, err := s.Head(ctx, []string{"a"}); return err }},
				{"Trim", func() error { _, err := s.Trim(ctx, time.Now()); return err }},
				{"Ping", func() error { return s.Ping(ctx) }},
			}
			for _, c := range calls {
				start := time.Now()
				err := c.call()
				if d := time.Since(start); d > bound {
					t.Errorf("%s took %v, want at most %v", c.name, d, bound)
				}
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("%s: %v, want ErrUnavailable", c.name, err)
				}
			}
			// A deadline of the caller's is kept too.
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			start := time.Now()
			_, err := s.Append(short, []store.Record{{Topic: "a", Data: "3"}})
			cancel()
			if d := time.Since(start); err == nil || d > time.Second+200*time.Millisecond {
				t.Errorf("Append with a 200ms deadline: %v after %v", err, d)
			}
			tt.mend(srv)
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after Redis came back: %v", err)
			}
			again := mustAppend(t, s, store.Record{Topic: "a", Data: "4"})[0].Event
			page, err := s.Read(ctx, []string{"a"}, first.ID, 0)
			if err != nil || page.Truncated || len(page.Events) == 0 || page.Events[len(page.Events)-1].ID != again.ID {
				t.Errorf("Read after Redis came back = %+v, %v; want the new event, not Truncated", page, err)
			}
		})
	}
}

// TestMinReplicas: with min_replicas 1 an Append returns once a replica
// has the events; with the replica gone it fails with ErrNotReplicated
// within the replica timeout, and the event stays on the master (a retry
// with its Idempotency-Key returns it).
func TestMinReplicas(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	replica := redistest.Start(t, redistest.Options{Config: []string{"replicaof " + hostPort(master.Addr)}})
	waitReplicaUp(t, master)
	s := openStore(t, Config{Client: testClient(master.Addr), MinReplicas: 1, ReplicaTimeout: time.Second})
	got := mustAppend(t, s, store.Record{Topic: "a", Data: "1"}, store.Record{Topic: "b", Data: "2"})
	if n, err := replica.Do("XLEN", s.keys("b").stream); err != nil || n != "1" {
		t.Errorf("replica's XLEN after an acknowledged Append = %q, %v; want 1", n, err)
	}
	replica.Kill()
	start := time.Now()
	rec := store.Record{Topic: "a", Data: "3", IdempotencyKey: "k"}
	_, err := s.Append(context.Background(), []store.Record{rec})
	if !errors.Is(err, ErrNotReplicated) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append without the replica: %v, want ErrNotReplicated", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Append without the replica took %v, want about the 1s replica timeout", d)
	}
	// The retry finds the stored event.
	s.minRepl = 0
	again := mustAppend(t, s, rec)[0]
	if !again.Duplicate || s.Compare(got[0].Event.ID, again.Event.ID) != -1 {
		t.Errorf("retry after ErrNotReplicated = %+v, want a duplicate of the stored event", again)
	}
}

// TestMinReplicasCluster: on a Cluster with a replica per master, WAIT
// goes to each master that took records, on the connection that wrote
// them.
func TestMinReplicasCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	c := redistest.StartCluster(t, 3, 1, redistest.Options{})
	for _, n := range c.Nodes {
		if role, err := n.Do("ROLE"); err == nil && strings.HasPrefix(role, "master") {
			waitReplicaUp(t, n)
		}
	}
	s := openStore(t, Config{Client: testClient(c.Addrs()...), MinReplicas: 1, ReplicaTimeout: time.Second})
	var recs []store.Record
	for i := range 12 {
		recs = append(recs, store.Record{Topic: string(rune('a' + i)), Data: "x"})
	}
	got := mustAppend(t, s, recs...)
	if len(got) != len(recs) {
		t.Fatalf("%d results for %d records", len(got), len(recs))
	}
}

// hostPort turns host:port into "host port", as replicaof takes it.
func hostPort(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i] + " " + addr[i+1:]
}

// waitReplicaUp waits until master counts a replica that is online.
func waitReplicaUp(t *testing.T, master *redistest.Server) {
	t.Helper()
	eventually.True(t, 0, func() bool {
		info, err := master.Do("INFO", "replication")
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, "a replica of %s online", master.Addr)
}

// TestScriptsForgotten: Redis forgets its scripts when it restarts (or on
// SCRIPT FLUSH); Append, Read and Trim load them again and go on, with
// MinReplicas too.
func TestScriptsForgotten(t *testing.T) {
	master := redistest.Start(t, redistest.Options{})
	redistest.Start(t, redistest.Options{Config: []string{"replicaof " + hostPort(master.Addr)}})
	waitReplicaUp(t, master)
	for _, repl := range []int{0, 1} {
		s := openStore(t, Config{Client: testClient(master.Addr), MinReplicas: repl, ReplicaTimeout: time.Second})
		first := mustAppend(t, s, store.Record{Topic: "a", Data: "1"}, store.Record{Topic: "b", Data: "1"})
		steps := []struct {
			name string
			call func() error
		}{
			{"Append", func() error {
				_, err := s.Append(context.Background(), []store.Record{{Topic: "a", Data: "2"}})
				return err
			}},
			{"Read", func() error {
				_, err := s.Read(context.Background(), []string{"a", "b"}, first[0].Event.ID, 0)
				return err
			}},
			{"Trim", func() error { _, err := s.Trim(context.Background(), time.Now()); return err }},
		}
		for _, st := range steps {
			if _, err := master.Do("SCRIPT", "FLUSH"); err != nil {
				t.Fatal(err)
			}
			if err := st.call(); err != nil {
				t.Errorf("min_replicas %d: %s after SCRIPT FLUSH: %v", repl, st.name, err)
			}
		}
	}
}
