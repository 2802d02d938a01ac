package scan_test

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sseguard/sseguard/policy"
	"github.com/sseguard/sseguard/scan"
)

// TestBaseline: a baseline written from a scan accepts its findings and
// pins its headers; a later scan of the same server is clean, and a scan of
// a server whose headers changed reports the drift.
func TestBaseline(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	leaky := modified(func(h http.Header) {
		h.Set("Server", "demo/1.2")
		// A different request ID on every response, as the hub sends.
		h.Set("X-Request-Id", strconv.FormatInt(n.Add(1), 10))
	})
	url := serveT(t, leaky) + "/events?topic=t"
	first := runScan(t, scan.Config{URL: url, HeartbeatMax: 600 * time.Millisecond})
	assertFires(t, first, scan.RuleLeak)

	path := filepath.Join(t.TempDir(), "baseline.json")
	if err := scan.NewBaseline(first).Write(path); err != nil {
		t.Fatal(err)
	}
	b, err := scan.LoadBaseline(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Headers) == 0 || len(b.Accept) != len(first.Findings) {
		t.Fatalf("baseline %+v: want the headers pinned and every finding accepted", b)
	}

	t.Run("same server: accepted, no drift", func(t *testing.T) {
		rep := runScan(t, scan.Config{URL: url, HeartbeatMax: 600 * time.Millisecond, Baseline: b, ExpectOrder: b.Order()})
		if rep.Count(scan.Info) != 0 {
			t.Errorf("unaccepted findings: %s", describe(rep))
		}
		assertQuiet(t, rep, scan.RuleDrift, scan.RuleOrder)
		if len(rep.Findings) == 0 || !rep.Findings[0].Accepted {
			t.Errorf("the accepted HDR-LEAK finding is not reported as accepted: %s", describe(rep))
		}
	})
	t.Run("changed server: drift", func(t *testing.T) {
		changed := modified(func(h http.Header) {
			h.Set("Server", "demo/1.2")
			h.Set("Cache-Control", "no-cache, no-store, no-transform, must-revalidate")
			h.Del("Referrer-Policy")
			h.Set("X-New", "1")
		})
		rep := runScan(t, scan.Config{URL: serveT(t, changed) + "/events?topic=t", HeartbeatMax: 600 * time.Millisecond, Baseline: b})
		assertFires(t, rep, scan.RuleDrift)
		var evidence []string
		for _, f := range rep.Findings {
			if f.Rule == scan.RuleDrift {
				evidence = append(evidence, f.Evidence)
			}
		}
		all := strings.Join(evidence, "\n")
		for _, want := range []string{"Cache-Control changed", "Referrer-Policy disappeared", "X-New appeared"} {
			if !strings.Contains(all, want) {
				t.Errorf("drift evidence lacks %q:\n%s", want, all)
			}
		}
	})
	t.Run("same meaning: no drift", func(t *testing.T) {
		reordered := modified(func(h http.Header) {
			h.Set("Server", "demo/1.2")
			h.Set("Cache-Control", "no-store, No-Cache,no-transform")
			h.Set("Content-Type", "text/event-stream;charset=UTF-8")
		})
		rep := runScan(t, scan.Config{URL: serveT(t, reordered) + "/events?topic=t", HeartbeatMax: 600 * time.Millisecond, Baseline: b})
		assertQuiet(t, rep, scan.RuleDrift)
	})
	t.Run("no-transform lost: drift", func(t *testing.T) {
		lost := modified(func(h http.Header) {
			h.Set("Server", "demo/1.2")
			h.Set("Cache-Control", "no-store, no-cache")
		})
		rep := runScan(t, scan.Config{URL: serveT(t, lost) + "/events?topic=t", HeartbeatMax: 600 * time.Millisecond, Baseline: b})
		assertFires(t, rep, scan.RuleDrift)
	})
	t.Run("fixed server: stale entries noted", func(t *testing.T) {
		rep := runScan(t, scan.Config{URL: serveT(t, healthy()) + "/events?topic=t", HeartbeatMax: 600 * time.Millisecond, Baseline: b})
		if !strings.Contains(strings.Join(rep.Notes, "\n"), "baseline entry HDR-LEAK") {
			t.Errorf("no note on the stale HDR-LEAK entry: %q", rep.Notes)
		}
	})
}

func TestParseBaselineErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": `{"version": 1, "accept": [], "extra": 1}`,
		"unknown rule":  `{"version": 1, "accept": [{"rule": "NOPE"}]}`,
		"wrong version": `{"version": 2, "accept": []}`,
		"empty name":    `{"version": 1, "accept": [], "headers": [{"name": "", "value": "x"}]}`,
		"not JSON":      `version: 1`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := scan.ParseBaseline([]byte(doc)); err == nil {
				t.Errorf("accepted %s", doc)
			}
		})
	}
}

func TestParseProfile(t *testing.T) {
	p, err := scan.ParseProfile([]byte(`
extends: baseline
name: edge
accept: strict
unset: [Content-Security-Policy]
stream:
  - name: Cache-Control
    value: no-cache, no-transform
    reason: our CDN
`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "edge" || p.Accept != policy.AcceptStrict {
		t.Errorf("name %q accept %v", p.Name, p.Accept)
	}
	if _, ok := p.Header(policy.KindStream, "Content-Security-Policy"); ok {
		t.Error("unset CSP is still there")
	}
	if h, ok := p.Header(policy.KindStream, "Cache-Control"); !ok || h.Value != "no-cache, no-transform" || h.Reason != "our CDN" {
		t.Errorf("Cache-Control %+v", h)
	}
	if h, _ := policy.Baseline.Header(policy.KindStream, "Cache-Control"); h.Value != "no-cache" {
		t.Error("ParseProfile changed the built-in baseline profile")
	}
	for name, doc := range map[string]string{
		"unknown key":     "extend: strict",
		"unknown base":    "extends: loose",
		"bad accept":      "accept: sometimes",
		"header no value": "stream: [{name: X-A}]",
	} {
		if _, err := scan.ParseProfile([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %q", name, doc)
		}
	}
	if p, err := scan.LoadProfile("baseline"); err != nil || p != policy.Baseline {
		t.Errorf("LoadProfile(baseline) = %v, %v", p, err)
	}
	if _, err := scan.LoadProfile("no-such-file.yaml"); err == nil {
		t.Error("LoadProfile accepted a missing file")
	}
}
