package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

// indexReadScript reads an index's epoch and last offset and the entries
// after a start offset whose topic starts with a prefix, atomically. It
// scans at most a budget of entries, so that a narrow pattern over a
// large index does not hold Redis: the caller goes on from the last
// offset scanned.
//
// KEYS: index meta, index stream
// ARGV: 1 the reader's epoch, 2 first offset to read when the epoch is
// the index's (else from the oldest), 3 entries wanted, 4 topic prefix,
// 5 budget of entries scanned.
//
// Returns {epoch or false, last offset, first offset scanned (0: none),
// last offset scanned (0: none), done (1: the end was reached), entries}.
var indexReadScript = goredis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'e', 'n')
if not m[1] then return {false, 0, 0, 0, 1, {}} end
local from = '-'
if ARGV[1] == m[1] then from = ARGV[2] end
local want, pfx, budget = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local out, first, last, scanned, done = {}, 0, 0, 0, 0
while #out < want and scanned < budget do
  local n = math.min(256, budget - scanned)
  local ents = redis.call('XRANGE', KEYS[2], from, '+', 'COUNT', n)
  for _, ent in ipairs(ents) do
    local off = tonumber(string.match(ent[1], '^(%d+)-'))
    if first == 0 then first = off end
    last = off
    scanned = scanned + 1
    local f = ent[2]
    if pfx == '' or string.sub(f[2], 1, #pfx) == pfx then
      out[#out+1] = ent
      if #out >= want then break end
    end
  end
  if #out >= want then break end
  if #ents < n then done = 1 break end
  from = string.format('%d', last + 1)
end
return {m[1], tonumber(m[2]), first, last, done, out}
`)

// indexBudget is how many index entries one indexReadScript call scans.
const indexBudget = 4096

// indexRead is one pattern's read of one index, for Read.
type indexRead struct {
	pattern, ix, key string
	at               pos
	named            bool
}

// readIndexes reads each pattern's indexes after the cursor's positions:
// up to limit+1 events of each, in index order, and whether some index
// has lost events after its position (see Read for the rules, which are
// a topic's).
func (s *Store) readIndexes(ctx context.Context, patterns []string, ps []pos, limit int) (lists [][]store.Event, truncated bool, err error) {
	var reads []indexRead
	for _, pat := range patterns {
		ixs, err := s.patternIndexes(pat)
		if err != nil {
			return nil, false, err
		}
		for _, ix := range ixs {
			r := indexRead{pattern: pat, ix: ix, key: s.posKey(pat, ix)}
			for _, p := range ps {
				if p.hash == r.key {
					r.at, r.named = p, true
				}
			}
			reads = append(reads, r)
		}
	}
	for _, r := range reads {
		evs, trunc, err := s.readIndex(ctx, r, len(ps) > 0, limit+1)
		if err != nil {
			return nil, false, err
		}
		truncated = truncated || trunc
		if len(evs) > 0 {
			lists = append(lists, evs)
		}
	}
	return lists, truncated, nil
}

// readIndex reads up to want events of r's pattern from its index after
// r's position, calling the script until it has them or reached the end.
func (s *Store) readIndex(ctx context.Context, r indexRead, cursorGiven bool, want int) (evs []store.Event, truncated bool, err error) {
	k := s.index(r.ix)
	filter := r.pattern[:len(r.pattern)-1]
	epoch, start := r.at.epoch, r.at.offset+1
	hashes := map[string]string{}
	for call := 0; ; call++ {
		var vals []any
		if strings.HasPrefix(r.ix, filter) {
			// Every entry of the index matches: a MULTI of two plain
			// commands, which spares Lua's copy of each entry (about
			// 3× faster, docs/benchmarks.md "Pattern replay").
			vals, err = s.indexTx(ctx, k, epoch, start, want-len(evs))
		} else {
			vals, err = s.runScript(ctx, indexReadScript, []string{k.meta, k.stream},
				epoch, strconv.FormatUint(start, 10), want-len(evs), filter, indexBudget)
		}
		if err != nil {
			return nil, false, fmt.Errorf("redis store: read index %q: %w", r.ix, err)
		}
		if len(vals) != 6 {
			return nil, false, fmt.Errorf("redis store: read index %q: %w: script replied %d values", r.ix, ErrUnavailable, len(vals))
		}
		ixEpoch, _ := vals[0].(string)
		last, _ := vals[1].(int64)
		first, _ := vals[2].(int64)
		scannedTo, _ := vals[3].(int64)
		done, _ := vals[4].(int64)
		entries, _ := vals[5].([]any)
		if call == 0 {
			truncated, err = indexTruncated(r, cursorGiven, ixEpoch, uint64(last), uint64(first))
			if err != nil {
				return nil, false, fmt.Errorf("redis store: read index %q: %w", r.ix, err)
			}
			epoch = ixEpoch
		} else if ixEpoch != epoch {
			// The index was lost between two calls: the reader's next
			// Read, from the events given, finds the new epoch.
			return evs, truncated, nil
		}
		for _, x := range entries {
			e, err := indexEvent(x, ixEpoch, hashes)
			if err != nil {
				return nil, false, fmt.Errorf("redis store: read index %q: %w", r.ix, err)
			}
			evs = append(evs, e)
		}
		if done == 1 || len(evs) >= want || scannedTo == 0 {
			return evs, truncated, nil
		}
		start = uint64(scannedTo) + 1
	}
}

// indexTx reads as indexReadScript does, unfiltered, with a MULTI: the
// index's epoch and last offset and want entries from start, reading
// again from the oldest when the epoch is not the reader's.
func (s *Store) indexTx(ctx context.Context, k indexKeys, epoch string, start uint64, want int) ([]any, error) {
	from := "-"
	if epoch != "" {
		from = strconv.FormatUint(start, 10)
	}
	for range 3 {
		var meta *goredis.SliceCmd
		var xr *goredis.XMessageSliceCmd
		_, err := s.c.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			meta = p.HMGet(ctx, k.meta, "e", "n")
			xr = p.XRangeN(ctx, k.stream, from, "+", int64(want))
			return nil
		})
		if err != nil {
			err = unavailable(err)
			s.reload(err)
			return nil, err
		}
		mv := meta.Val()
		e, _ := mv[0].(string)
		n, _ := mv[1].(string)
		if e == "" {
			return []any{nil, int64(0), int64(0), int64(0), int64(1), []any{}}, nil
		}
		if e != epoch && from != "-" {
			from = "-" // another epoch: the reader's offsets mean nothing in it
			continue
		}
		last, _ := strconv.ParseInt(n, 10, 64)
		msgs := xr.Val()
		entries := make([]any, len(msgs))
		var first, scanned int64
		for i, m := range msgs {
			off, _, _ := parseEntryID(m.ID)
			if i == 0 {
				first = int64(off)
			}
			scanned = int64(off)
			entries[i] = m
		}
		done := int64(0)
		if len(msgs) < want {
			done = 1
		}
		return []any{e, last, first, scanned, done, entries}, nil
	}
	return nil, fmt.Errorf("%w: the index's epoch kept changing", ErrUnavailable)
}

// indexTruncated applies Read's rules to an index: epoch, last and first
// are the index's epoch, last offset and first retained offset after the
// position (0: none).
func indexTruncated(r indexRead, cursorGiven bool, epoch string, last, first uint64) (bool, error) {
	lostSome := first > 1 || first == 0 && last > 0
	switch {
	case !r.named:
		return cursorGiven && lostSome, nil
	case r.at.epoch == "":
		return lostSome, nil
	case epoch == "" || epoch != r.at.epoch:
		return true, nil
	case r.at.offset > last:
		return false, fmt.Errorf("cursor after the index's last event: %w", store.ErrUnknownCursor)
	case first > 0 && first > r.at.offset+1, first == 0 && last > r.at.offset:
		return true, nil
	}
	return false, nil
}

// indexEvent decodes an index entry: ID <offset>-<µs>, fields p, e, o, d
// and t. hashes caches topic hashes over one read.
func indexEvent(x any, ixEpoch string, hashes map[string]string) (store.Event, error) {
	var id string
	var field func(yield func(name, val string) bool)
	switch ent := x.(type) {
	case goredis.XMessage: // from indexTx
		id = ent.ID
		field = func(yield func(name, val string) bool) {
			for name, v := range ent.Values {
				val, _ := v.(string)
				if !yield(name, val) {
					return
				}
			}
		}
	case []any: // from indexReadScript
		if len(ent) != 2 {
			return store.Event{}, fmt.Errorf("%w: index entry %v", ErrUnavailable, x)
		}
		id, _ = ent[0].(string)
		fields, _ := ent[1].([]any)
		field = func(yield func(name, val string) bool) {
			for i := 0; i+1 < len(fields); i += 2 {
				name, _ := fields[i].(string)
				val, _ := fields[i+1].(string)
				if !yield(name, val) {
					return
				}
			}
		}
	default:
		return store.Event{}, fmt.Errorf("%w: index entry %v", ErrUnavailable, x)
	}
	xoff, us, ok := parseEntryID(id)
	if !ok {
		return store.Event{}, fmt.Errorf("%w: index entry ID %q", ErrUnavailable, id)
	}
	var topic, epoch, off, typ, data string
	for name, val := range field {
		switch name {
		case "p":
			topic = val
		case "e":
			epoch = val
		case "o":
			off = val
		case "t":
			typ = val
		case "d":
			data = val
		}
	}
	o, ok := parseOffset(off)
	if !ok || topic == "" {
		return store.Event{}, fmt.Errorf("%w: index entry %q has no topic position", ErrUnavailable, id)
	}
	h, ok := hashes[topic]
	if !ok {
		h = topicHash(topic)
		hashes[topic] = h
	}
	return store.Event{
		ID:    pos{hash: h, epoch: epoch, offset: o}.idWith(ixPos{epoch: ixEpoch, offset: xoff}),
		Topic: topic, Type: typ, Data: data,
		Time: time.UnixMicro(us).UTC(),
	}, nil
}

// runScript runs sc, loading the scripts again when Redis forgot them.
func (s *Store) runScript(ctx context.Context, sc *goredis.Script, keys []string, args ...any) ([]any, error) {
	vals, err := s.evalSha(ctx, sc, keys, args...).Slice()
	if err != nil {
		err = unavailable(err)
		s.reload(err)
		return nil, err
	}
	return vals, nil
}

// evalSha runs sc, loading the scripts again when Redis forgot them.
func (s *Store) evalSha(ctx context.Context, sc *goredis.Script, keys []string, args ...any) *goredis.Cmd {
	cmd := sc.EvalSha(ctx, s.c, keys, args...)
	if isNoScript(cmd.Err()) && s.loadScripts(ctx) == nil {
		cmd = sc.EvalSha(ctx, s.c, keys, args...)
	}
	return cmd
}

// headIndexes returns the position of each pattern of patterns in each of
// its indexes: the index's last offset, or before its first event.
func (s *Store) headIndexes(ctx context.Context, patterns []string) ([]pos, error) {
	type q struct {
		key string
		cmd *goredis.SliceCmd
	}
	var qs []q
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, pat := range patterns {
			ixs, err := s.patternIndexes(pat)
			if err != nil {
				return err
			}
			for _, ix := range ixs {
				qs = append(qs, q{key: s.posKey(pat, ix), cmd: p.HMGet(ctx, s.index(ix).meta, "e", "n")})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	ps := make([]pos, 0, len(qs))
	for _, x := range qs {
		vals := x.cmd.Val()
		epoch, _ := vals[0].(string)
		n, _ := vals[1].(string)
		off, err := strconv.ParseUint(n, 10, 64)
		if epoch == "" || err != nil || off == 0 {
			ps = append(ps, pos{hash: x.key})
			continue
		}
		ps = append(ps, pos{hash: x.key, epoch: epoch, offset: off})
	}
	return ps, nil
}
