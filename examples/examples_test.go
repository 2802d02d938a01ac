package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// language is one set of examples: the commands that run its publisher
// and its subscriber, and the programs they need.
type language struct {
	name      string
	needs     []string // programs that must be on PATH
	publish   []string // argv before TOPIC DATA [TYPE]
	subscribe []string // argv before TOPIC [COUNT]
	// retryLine: the subscriber reports the server's retry hint on stderr
	// as "retry MS" (sse.Client, in Go, keeps it to itself).
	retryLine bool
}

func languages(bin string) []language {
	return []language{
		{name: "python", needs: []string{"python3"},
			publish: []string{"python3", "python/publish.py"}, subscribe: []string{"python3", "python/subscribe.py"}, retryLine: true},
		{name: "node", needs: []string{"node"},
			publish: []string{"node", "node/publish.mjs"}, subscribe: []string{"node", "node/subscribe.mjs"}, retryLine: true},
		{name: "go",
			publish: []string{filepath.Join(bin, "publish")}, subscribe: []string{filepath.Join(bin, "subscribe")}},
		{name: "shell", needs: []string{"sh", "curl", "sed", "od", "mkfifo"},
			publish: []string{"sh", "shell/publish.sh"}, subscribe: []string{"sh", "shell/subscribe.sh"}, retryLine: true},
	}
}

// require skips when a program is missing, except under CI=true, where
// .ci/run must have installed it.
func require(t *testing.T, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required under CI=true: %v", p, err)
			}
			t.Skipf("skipping: %s is not installed: %v", p, err)
		}
	}
}

// hubConfig keeps five events per topic, so that a resume from an older
// ID meets retention, and logs JSON, where the test finds the address.
const hubConfig = `store:
  max_events_per_topic: 5
stream:
  retry: 500ms
log:
  format: json
  level: info
`

// runTimeout bounds every example run; a run that takes longer hangs.
const runTimeout = 60 * time.Second

// TestExamples runs each language's publisher and subscriber against a
// hub of its own: publishing with an Idempotency-Key (a repeat returns the
// first ID), the problem+json refusals (422, 403), a subscriber that
// resumes with Last-Event-ID across a restart of the hub and gets exactly
// the events it missed, and event: reset when retention dropped history.
func TestExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: runs programs against the built binary")
	}
	bin := binaries(t)
	for _, lang := range languages(bin) {
		t.Run(lang.name, func(t *testing.T) {
			t.Parallel()
			require(t, lang.needs...)
			testLanguage(t, bin, lang)
		})
	}
}

func testLanguage(t *testing.T, bin string, lang language) {
	h := startHub(t, bin, hubConfig)
	pubTok := h.token("publisher", "--publish", "news,trimmed")
	subTok := h.token("reader", "--subscribe", "news,trimmed")
	otherTok := h.token("other", "--publish", "other", "--subscribe", "other")

	// run runs one example to its end and returns stdout, stderr and the
	// exit code.
	run := func(argv []string, env ...string) (string, string, int) {
		t.Helper()
		p := start(t, childEnv(append([]string{"SSEGUARD_URL=" + h.URL()}, env...)...), argv...)
		code := p.wait(t, runTimeout)
		return p.stdout.String(), p.stderr.String(), code
	}
	publish := func(tok, key string, args ...string) (string, string, int) {
		t.Helper()
		return run(append(slices.Clone(lang.publish), args...), "SSEGUARD_TOKEN="+tok, "IDEMPOTENCY_KEY="+key)
	}
	mustPublish := func(key string, args ...string) string {
		t.Helper()
		out, errOut, code := publish(pubTok, key, args...)
		id := strings.TrimSpace(out)
		if code != 0 || id == "" || strings.Contains(id, " ") {
			t.Fatalf("publish %q: exit %d, stdout %q, stderr %q; want an ID", args, code, out, errOut)
		}
		return id
	}

	// Publishing: the key makes a repeat return the first ID and store
	// nothing; the same key for another event and a topic the token may
	// not use are refusals with their problem codes.
	id1 := mustPublish("k1", "news", "one")
	id2 := mustPublish("k2", "news", "two", "note")
	if id1 == id2 {
		t.Fatalf("two events got the same ID %q", id1)
	}
	if out, errOut, code := publish(pubTok, "k1", "news", "one"); code != 0 || out != id1+" duplicate\n" {
		t.Fatalf("repeated publish: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, id1+" duplicate\n")
	}
	assertRefused(t, "publish with a reused key", 422, "idempotency_key_reused")(publish(pubTok, "k1", "news", "uno"))
	assertRefused(t, "publish to a forbidden topic", 403, "topic_forbidden")(publish(otherTok, "k5", "news", "x"))
	assertStored(t, h, subTok, "news", []string{id1 + " one", id2 + " two"})

	// Resume: the subscriber starts after id1, gets id2 from history, and
	// then loses its hub. Events published while it is away (one of them by
	// a publisher that retries until the hub is back) reach it, once each,
	// when it reconnects with Last-Event-ID.
	subEnv := childEnv("SSEGUARD_URL="+h.URL(), "SSEGUARD_TOKEN="+subTok, "LAST_EVENT_ID="+id1)
	sub := start(t, subEnv, append(slices.Clone(lang.subscribe), "news", "3")...)
	if err := sub.stdout.WaitFor(runTimeout, sub.done, func(s string) bool { return strings.Contains(s, "event "+id2+" note two\n") }); err != nil {
		t.Fatalf("the subscriber did not replay %s: %v", id2, err)
	}
	h.stop()
	pubEnv := childEnv("SSEGUARD_URL="+h.URL(), "SSEGUARD_TOKEN="+pubTok, "IDEMPOTENCY_KEY=k3")
	pub := start(t, pubEnv, append(slices.Clone(lang.publish), "news", "three")...)
	if err := pub.stderr.WaitFor(runTimeout, pub.done, func(s string) bool { return strings.Contains(s, "retrying in ") }); err != nil {
		t.Fatalf("the publisher did not retry while the hub was down: %v", err)
	}
	h.restart()
	if code := pub.wait(t, runTimeout); code != 0 {
		t.Fatalf("the retrying publisher exited %d", code)
	}
	id3 := strings.TrimSpace(pub.stdout.String())
	id4 := mustPublish("k4", "news", "four")
	if code := sub.wait(t, runTimeout); code != 0 {
		t.Fatalf("the subscriber exited %d", code)
	}
	want := fmt.Sprintf("event %s note two\nevent %s message three\nevent %s message four\n", id2, id3, id4)
	if got := sub.stdout.String(); got != want {
		t.Errorf("subscriber printed\n%s\nwant\n%s", got, want)
	}
	if s := sub.stderr.String(); !strings.Contains(s, "connected (Last-Event-ID: "+id2+")") {
		t.Errorf("the subscriber did not reconnect with Last-Event-ID %s; stderr:\n%s", id2, s)
	}
	if s := sub.stderr.String(); lang.retryLine && !strings.Contains(s, "retry ") {
		t.Errorf("the subscriber did not report the retry hint; stderr:\n%s", s)
	}

	// Reset: seven events on a topic that keeps five. A subscriber resuming
	// after the first is told that history was lost, then gets the five.
	var ids []string
	for i := range 7 {
		ids = append(ids, publishDirect(t, h, pubTok, "trimmed", fmt.Sprint("t", i)))
	}
	out, errOut, code := run(append(slices.Clone(lang.subscribe), "trimmed", "5"), "SSEGUARD_TOKEN="+subTok, "LAST_EVENT_ID="+ids[0])
	want = "reset truncated\n"
	for i := 2; i < 7; i++ {
		want += fmt.Sprintf("event %s message t%d\n", ids[i], i)
	}
	if code != 0 || out != want {
		t.Errorf("subscriber after retention: exit %d, stdout\n%s\nwant\n%s\nstderr:\n%s", code, out, want, errOut)
	}

	// A subscriber that may not read the topic stops at once with the code.
	assertRefused(t, "subscribe to a forbidden topic", 403, "topic_forbidden")(
		run(append(slices.Clone(lang.subscribe), "news"), "SSEGUARD_TOKEN="+otherTok))
}

// assertRefused returns a check that an example run exited 1 and reported
// the refusal as "refused: STATUS CODE: DETAIL".
func assertRefused(t *testing.T, what string, status int, code string) func(string, string, int) {
	t.Helper()
	return func(stdout, stderr string, exit int) {
		t.Helper()
		prefix := fmt.Sprintf("refused: %d %s: ", status, code)
		if exit != 1 || stdout != "" || !strings.Contains(stderr, prefix) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", what, exit, stdout, stderr, prefix+"…")
		}
	}
}

// assertStored checks with the poll API that topic holds exactly want
// ("ID DATA" each).
func assertStored(t *testing.T, h *hub, tok, topic string, want []string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.URL()+"/api/poll?topic="+topic+"&after=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ Events []struct{ ID, Data string } }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("poll %s: %d, %v", topic, resp.StatusCode, err)
	}
	var got []string
	for _, e := range ans.Events {
		got = append(got, e.ID+" "+e.Data)
	}
	if !slices.Equal(got, want) {
		t.Errorf("topic %s holds %q, want %q", topic, got, want)
	}
}

// publishDirect publishes with net/http and returns the ID.
func publishDirect(t *testing.T, h *hub, tok, topic, data string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"topic": topic, "data": data})
	req, _ := http.NewRequest(http.MethodPost, h.URL()+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Close = true
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d, %v", resp.StatusCode, err)
	}
	return ans.ID
}
