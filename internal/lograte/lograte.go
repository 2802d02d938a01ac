// Package lograte keeps repeated log lines from flooding a log: the first
// occurrence of a key is logged at once, later ones are counted, and at
// most one line per interval stands for all of them.
//
// A caller asks before it logs:
//
//	if suppressed, ok := lim.Allow("store", now); ok {
//		log.Error("store commits failing", "count", suppressed+1, "err", err)
//	}
//
// and, to report the tail of a burst that ended, calls Flush on a timer
// (or when the condition clears) and logs what it returns.
//
// Keys should name a kind of event (a failing operation, a route and
// header), not carry free text such as an error message: the limiter
// remembers each key. Package lograte does not log by itself and does not
// sample: every occurrence is counted.
package lograte

import (
	"sync"
	"time"
)

// DefaultInterval is the least time between two lines of one key when
// Limiter.Interval is zero.
const DefaultInterval = time.Minute

// DefaultMaxKeys bounds the keys a Limiter remembers when Limiter.MaxKeys
// is zero.
const DefaultMaxKeys = 4096

// Limiter decides which occurrences of an event get a log line. The zero
// value is ready to use. It is safe for concurrent use.
type Limiter struct {
	// Interval is the least time between two lines of one key; zero means
	// DefaultInterval.
	Interval time.Duration
	// MaxKeys bounds the keys remembered; zero means DefaultMaxKeys. When
	// a new key finds the limiter full, it forgets the keys with nothing
	// pending whose interval has passed, and, if none, every key: their
	// next occurrence is then logged at once, and counts not yet logged
	// are lost.
	MaxKeys int

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time // when the last line of the key was allowed
	suppressed int       // occurrences since then
}

func (l *Limiter) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultInterval
}

// Allow records one occurrence of key at now. ok reports whether the
// caller may log a line for it; suppressed is then how many occurrences
// were counted but not logged since the key's previous line (zero for the
// first), so the line stands for suppressed+1 occurrences.
func (l *Limiter) Allow(key string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		l.make(now)
		l.keys[key] = &entry{last: now}
		return 0, true
	}
	if now.Sub(e.last) < l.interval() {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

// Flush reports the occurrences of key counted but not logged, once the
// key's interval has passed at now: ok is then true, and the caller logs a
// line for suppressed occurrences, which starts a new interval. It is for
// a timer that reports the tail of a burst.
func (l *Limiter) Flush(key string, now time.Time) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil || e.suppressed == 0 || now.Sub(e.last) < l.interval() {
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}

// Forget drops key and returns its occurrences counted but not logged, for
// a last line when the condition behind the key has cleared. The next
// occurrence of key is logged at once.
func (l *Limiter) Forget(key string) (suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil {
		return 0
	}
	delete(l.keys, key)
	return e.suppressed
}

// Drain forgets every key and calls fn, after releasing the limiter, for
// each one with occurrences counted but not logged: for a last line per key
// at shutdown.
func (l *Limiter) Drain(fn func(key string, suppressed int)) {
	l.mu.Lock()
	keys := l.keys
	l.keys = nil
	l.mu.Unlock()
	for k, e := range keys {
		if e.suppressed > 0 {
			fn(k, e.suppressed)
		}
	}
}

// make prepares the map for one more key at now.
func (l *Limiter) make(now time.Time) {
	if l.keys == nil {
		l.keys = make(map[string]*entry)
	}
	limit := l.MaxKeys
	if limit <= 0 {
		limit = DefaultMaxKeys
	}
	if len(l.keys) < limit {
		return
	}
	for k, e := range l.keys {
		if e.suppressed == 0 && now.Sub(e.last) >= l.interval() {
			delete(l.keys, k)
		}
	}
	if len(l.keys) >= limit {
		clear(l.keys)
	}
}
