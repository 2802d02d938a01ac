package policy

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"
)

// headerSet is what Apply writes for one kind over one class of
// connection, built once from the profile's rules: canonical keys, and
// one-element value slices that every response shares. Each slice has
// len == cap, so an Add on a response's header allocates a slice of its
// own instead of writing into the shared array; nothing in net/http or
// sseguard writes a header value in place.
type headerSet struct {
	from []Header // the rules it was built from, to notice a changed profile
	keys []string
	vals [][]string
}

// protoClass splits connections by what Header.applies decides:
// HTTP/1.1 and later minors of 1 (0), anything else (1).
func protoClass(protoMajor, protoMinor int) int {
	if protoMajor == 1 && protoMinor >= 1 {
		return 0
	}
	return 1
}

// profileSets holds a profile's prebuilt sets, per kind and protoClass.
type profileSets [4][2]atomic.Pointer[headerSet]

// headerSets maps a weak *Profile to its *profileSets; an entry goes when
// its profile is collected, so a program that clones profiles as it goes
// does not grow it. A profile is read-only once in use; a set is still
// checked against the rules on each use (string comparisons of the same
// strings, which stop at the pointer) and rebuilt when a rule changed, so
// a profile changed in place is never answered with its old headers.
var headerSets sync.Map

// headerSetFor returns p's prebuilt set for kind k over a connection of
// the given protocol version.
func (p *Profile) headerSetFor(k Kind, protoMajor, protoMinor int) *headerSet {
	rules := p.kindHeaders(k)
	if k < KindStream || k > KindPage {
		return &headerSet{}
	}
	slot := &p.sets()[k][protoClass(protoMajor, protoMinor)]
	if s := slot.Load(); s != nil && sameRules(s.from, rules) {
		return s
	}
	s := buildHeaderSet(rules, protoMajor, protoMinor)
	slot.Store(s)
	return s
}

// lastSets is the profile whose sets were looked up last, with them: a
// server answers with one profile, which then costs no weak.Make per
// response. It holds one profile alive at most.
var lastSets atomic.Pointer[profileEntry]

type profileEntry struct {
	p    *Profile
	sets *profileSets
}

// sets returns p's prebuilt sets, made empty on first use.
func (p *Profile) sets() *profileSets {
	if e := lastSets.Load(); e != nil && e.p == p {
		return e.sets
	}
	key := weak.Make(p)
	v, ok := headerSets.Load(key)
	if !ok {
		var loaded bool
		if v, loaded = headerSets.LoadOrStore(key, new(profileSets)); !loaded {
			runtime.AddCleanup(p, func(key weak.Pointer[Profile]) { headerSets.Delete(key) }, key)
		}
	}
	sets := v.(*profileSets)
	lastSets.Store(&profileEntry{p, sets})
	return sets
}

func sameRules(a, b []Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// buildHeaderSet builds the set that the rules give a connection of this
// version: what Apply set header by header before it was prebuilt, a
// later rule for the same name replacing an earlier one.
func buildHeaderSet(rules []Header, protoMajor, protoMinor int) *headerSet {
	s := &headerSet{from: append([]Header(nil), rules...)}
	for _, hd := range rules {
		if !hd.applies(protoMajor, protoMinor) {
			continue
		}
		key := http.CanonicalHeaderKey(hd.Name)
		val := []string{hd.Value}[:1:1]
		replaced := false
		for i, k := range s.keys {
			if k == key {
				s.vals[i], replaced = val, true
			}
		}
		if !replaced {
			s.keys = append(s.keys, key)
			s.vals = append(s.vals, val)
		}
	}
	return s
}

// writeTo sets the set's headers on h, each replacing what was there.
func (s *headerSet) writeTo(h http.Header) {
	for i, k := range s.keys {
		h[k] = s.vals[i]
	}
}

// varyOrigin is the shared value of a Vary that applyCORS adds to a
// response without one (len == cap, see headerSet).
var varyOrigin = []string{"Origin"}[:1:1]
