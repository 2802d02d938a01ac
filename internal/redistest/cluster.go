package redistest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of servers that a test started.
type Cluster struct {
	// Nodes are the servers, masters first; with replicas, redis-cli
	// decides which replica follows which master.
	Nodes []*Server
}

// StartCluster starts masters*(1+replicas) servers in cluster mode, each
// on a free port with a free cluster bus port, joins them with redis-cli
// --cluster create (the 16384 slots split evenly over the masters), and
// waits until every node reports the cluster ok. The servers are killed
// when tb ends. cluster-node-timeout is 2 s, so that a failover in a test
// takes seconds.
func StartCluster(tb testing.TB, masters, replicas int, o Options) *Cluster {
	tb.Helper()
	bin := Binary(tb)
	cli := lookPath(tb, "redis-cli", "redis-tools")
	c := &Cluster{}
	for range masters * (1 + replicas) {
		s := &Server{tb: tb, bin: bin, Dir: tb.TempDir()}
		s.startOnFreePort(o, []string{
			"cluster-enabled yes",
			"cluster-config-file " + s.Dir + "/nodes.conf",
			"cluster-node-timeout 2000",
		})
		c.Nodes = append(c.Nodes, s)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(tb)
	return c
}

// Addrs returns the nodes' addresses, masters first.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		addrs[i] = s.Addr
	}
	return addrs
}

// WaitOK waits until every running node reports cluster_state:ok with all
// slots served and every node known, or fails tb.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	pause := time.Millisecond
	for {
		bad := ""
		for _, s := range c.Nodes {
			if !s.running() {
				continue
			}
			info, err := s.Do("CLUSTER", "INFO")
			if err != nil {
				bad = s.Addr + ": " + err.Error()
				break
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				bad = s.Addr + ": " + strings.Join(strings.Fields(info)[:4], " ")
				break
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster not ok after %v: %s", startTimeout, bad)
		}
		time.Sleep(pause) // polling a condition, not synchronising on time
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// NodeOfSlot returns the running master that serves slot now, nil when
// none does.
func (c *Cluster) NodeOfSlot(slot int) *Server {
	for _, s := range c.Nodes {
		if !s.running() {
			continue
		}
		role, err := s.Do("ROLE")
		if err != nil || !strings.HasPrefix(role, "master") {
			continue
		}
		if owns(s, slot) {
			return s
		}
	}
	return nil
}

// owns reports whether s serves slot, by the slot ranges of the "myself"
// line of its CLUSTER NODES.
func owns(s *Server, slot int) bool {
	nodes, err := s.Do("CLUSTER", "NODES")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && a <= slot && slot <= b {
				return true
			}
		}
	}
	return false
}

// running reports whether the server's process is up.
func (s *Server) running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}
