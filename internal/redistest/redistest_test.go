package redistest

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestartKeepsWhatAOFKept: a server with the AOF fsynced always keeps
// a key across a SIGKILL; one without persistence loses it.
func TestRestartKeepsWhatAOFKept(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		kept bool
	}{
		{"aof always", Options{AppendOnly: true, Fsync: "always"}, true},
		{"no persistence", Options{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.o)
			if _, err := s.Do("SET", "k", "v"); err != nil {
				t.Fatal(err)
			}
			s.Kill()
			if _, err := s.Do("PING"); err == nil {
				t.Fatal("PING answered after Kill")
			}
			addr := s.Addr
			s.Restart()
			if s.Addr != addr {
				t.Fatalf("restarted on %s, want %s", s.Addr, addr)
			}
			got, err := s.Do("GET", "k")
			if err != nil {
				t.Fatal(err)
			}
			if kept := got == "v"; kept != tt.kept {
				t.Errorf("GET k after a crash = %q, want kept=%v", got, tt.kept)
			}
		})
	}
}

// TestClusterSpreadsSlots: three masters, each serving a third of the
// slots, all of them answering for the whole cluster.
func TestClusterSpreadsSlots(t *testing.T) {
	c := StartCluster(t, 3, 0, Options{})
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(c.Nodes))
	}
	seen := map[string]bool{}
	for _, slot := range []int{0, 6000, 12000, 16383} {
		n := c.NodeOfSlot(slot)
		if n == nil {
			t.Fatalf("no master serves slot %d", slot)
		}
		seen[n.Addr] = true
	}
	if len(seen) != 3 {
		t.Errorf("slots 0, 6000, 12000 and 16383 are served by %d masters, want 3", len(seen))
	}
	for _, s := range c.Nodes {
		info, err := s.Do("CLUSTER", "INFO")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(info, "cluster_size:3") {
			t.Errorf("%s: CLUSTER INFO without cluster_size:3:\n%s", s.Addr, info)
		}
	}
	// A key goes to the master of its slot, and only there.
	slot, err := c.Nodes[0].Do("CLUSTER", "KEYSLOT", "k")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(slot)
	owner := c.NodeOfSlot(n)
	if _, err := owner.Do("SET", "k", "v"); err != nil {
		t.Fatalf("SET on the slot's master: %v", err)
	}
	for _, s := range c.Nodes {
		if s == owner {
			continue
		}
		if _, err := s.Do("SET", "k", "v"); err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			t.Errorf("SET on %s, not the slot's master: %v, want MOVED", s.Addr, err)
		}
	}
}

// TestFreeze: a frozen server accepts a connection but answers nothing
// until it is thawed.
func TestFreeze(t *testing.T) {
	s := Start(t, Options{})
	s.Freeze()
	conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial a frozen server: %v", err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if line, err := r.ReadString('\n'); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a frozen server answered %q, %v", line, err)
	}
	s.Thaw()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "+PONG\r\n" {
		t.Errorf("after Thaw: %q, %v, want +PONG", line, err)
	}
}
