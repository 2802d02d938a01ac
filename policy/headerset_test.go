package policy

import (
	"net/http"
	"reflect"
	"runtime"
	"testing"
	"time"
)

// referenceApply is Apply header by header, as it was before the sets
// were prebuilt: the rule the sets must reproduce.
func referenceApply(p *Profile, h http.Header, k Kind, protoMajor, protoMinor int) {
	for _, hd := range p.Headers(k, protoMajor, protoMinor) {
		h.Set(hd.Name, hd.Value)
	}
	if k == KindStream {
		for _, name := range []string{"Content-Length", "Content-Encoding", "Content-Range", "ETag", "Last-Modified"} {
			h.Del(name)
		}
	}
	if protoMajor >= 2 || (k == KindStream && protoMajor == 1 && protoMinor == 0) {
		for _, name := range ConnectionSpecific {
			h.Del(name)
		}
	}
}

// TestHeaderSetsEqualProfile: for every built-in profile, one with HSTS
// and one with a rule named twice in other case, every kind and protocol
// version, Apply (prebuilt sets) gives exactly the headers the profile's
// rules give one by one, over an empty header and over one a handler
// filled with values Apply must replace or remove.
func TestHeaderSetsEqualProfile(t *testing.T) {
	hsts := Strict.Clone()
	hsts.SetHSTS("max-age=63072000; includeSubDomains")
	twice := Baseline.Clone()
	twice.JSON = append(twice.JSON, Header{Name: "x-content-type-options", Value: "nosniff; again"})
	protos := [][2]int{{1, 0}, {1, 1}, {2, 0}, {3, 0}}
	for _, p := range []*Profile{Strict, Baseline, hsts, twice} {
		for k := KindStream; k <= KindPage; k++ {
			for _, pr := range protos {
				for _, start := range []http.Header{
					{},
					{"Content-Type": {"text/plain"}, "Cache-Control": {"public"}, "Connection": {"close"},
						"Content-Length": {"12"}, "X-Other": {"kept"}},
				} {
					got, want := start.Clone(), start.Clone()
					p.Apply(got, k, pr[0], pr[1])
					referenceApply(p, want, k, pr[0], pr[1])
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s %v HTTP/%d.%d over %v:\n got %v\nwant %v", p.Name, k, pr[0], pr[1], start, got, want)
					}
				}
			}
		}
	}
}

// TestHeaderSetsShared: a header added to one response after Apply does
// not reach the next response's headers, though their values are shared.
func TestHeaderSetsShared(t *testing.T) {
	h := http.Header{}
	Strict.Apply(h, KindJSON, 1, 1)
	h.Add("Cache-Control", "private")
	h.Add("Content-Type", "x")
	applyCORS(h, "")
	h.Add("Vary", "Accept")
	next := http.Header{}
	Strict.Apply(next, KindJSON, 1, 1)
	applyCORS(next, "")
	want := http.Header{}
	referenceApply(Strict, want, KindJSON, 1, 1)
	want.Set("Vary", "Origin")
	if !reflect.DeepEqual(next, want) {
		t.Fatalf("the next response got %v, want %v", next, want)
	}
}

// TestHeaderSetsFollowChanges: a profile whose rules change after it was
// used answers with the new rules, not the prebuilt old ones.
func TestHeaderSetsFollowChanges(t *testing.T) {
	p := Strict.Clone()
	h := http.Header{}
	p.Apply(h, KindJSON, 1, 1)
	if got := h.Get("Referrer-Policy"); got != "no-referrer" {
		t.Fatalf("Referrer-Policy %q before the change", got)
	}
	for i := range p.JSON {
		if p.JSON[i].Name == "Referrer-Policy" {
			p.JSON[i].Value = "same-origin"
		}
	}
	p.SetHSTS("max-age=60")
	h = http.Header{}
	p.Apply(h, KindJSON, 1, 1)
	if got := h.Get("Referrer-Policy"); got != "same-origin" {
		t.Errorf("Referrer-Policy %q after the change, want same-origin", got)
	}
	if got := h.Get(HSTSHeader); got != "max-age=60" {
		t.Errorf("%s %q after SetHSTS, want max-age=60", HSTSHeader, got)
	}
}

// TestKindOfFastPath: the values KindOf knows without parsing give what
// parsing gives.
func TestKindOfFastPath(t *testing.T) {
	for _, ct := range []string{"application/json", "application/problem+json", "text/event-stream; charset=utf-8",
		"text/event-stream", "text/html; charset=utf-8", "Application/JSON", "text/html;charset=UTF-8", "text/plain", ""} {
		k, ok := KindOf(ct)
		wk, wok := kindOfParsed(ct)
		if k != wk || ok != wok {
			t.Errorf("KindOf(%q) = %v, %v; parsing gives %v, %v", ct, k, ok, wk, wok)
		}
	}
}

// TestHeaderSetsForgetCollectedProfiles: the sets of profiles that are no
// longer referenced leave headerSets once the garbage collector frees
// them, so a program that clones a profile per use does not grow it.
func TestHeaderSetsForgetCollectedProfiles(t *testing.T) {
	count := func() int {
		n := 0
		headerSets.Range(func(any, any) bool { n++; return true })
		return n
	}
	Strict.Apply(http.Header{}, KindJSON, 1, 1)
	before := count()
	for range 100 {
		Strict.Clone().Apply(http.Header{}, KindJSON, 1, 1)
	}
	// The last profile looked up stays referenced (lastSets): Strict again.
	Strict.Apply(http.Header{}, KindJSON, 1, 1)
	if n := count(); n < before+1 {
		t.Fatalf("%d entries after applying 100 clones, want more than %d", n, before)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if n := count(); n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d entries 10 s after the clones were dropped, want at most %d", count(), before)
		}
		runtime.Gosched()
	}
}
