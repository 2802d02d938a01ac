package redis

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sseguard/sseguard/store"
)

func init() {
	scripts = append(scripts, indexAppendScript, indexReadScript, indexTrimScript)
}

// indexAppendScript is appendScript for a topic under a declared prefix
// (see index.go): besides the topic's stream it appends each new event to
// the prefix's index stream, in the same atomic step, and the event's ID
// and feed message carry its index position, which the topic's entry
// keeps in a field x ("<index epoch>.<index offset>") for reads by topic. An index whose meta is gone
// (Redis lost it, or it is new) starts a new epoch, as a topic does; its
// meta counts the topics that appended in the epoch (c), which bounds
// its retention by count.
//
// KEYS: meta, stream, index meta, index stream, then the records'
// idempotency keys.
// ARGV: 1-7 as appendScript's, 8 new index epoch, then four per record as
// appendScript's.
//
// Returns {created, epoch, index epoch, then per record: status, offset,
// µs, conflict, fields of a duplicate or false, "<index epoch>.<index
// offset>" (a duplicate's as first stored)}.
var indexAppendScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local m = redis.call('HMGET', KEYS[1], 'e', 'n', 'u', 'kf', 'ko', 'x')
local x = redis.call('HMGET', KEYS[3], 'e', 'n', 'u', 'c')
local e, n, created = m[1], 0, 0
local kf, ko = tonumber(m[4] or '0'), tonumber(m[5] or '0')
if e then
  n = tonumber(m[2])
  local last = tonumber(m[3])
  if now < last then now = last end
else
  redis.call('DEL', KEYS[2])
  e = ARGV[1]
  created = 1
end
local xe, xn, xc = x[1], 0, 0
if xe then
  xn = tonumber(x[2])
  xc = tonumber(x[4] or '0')
  local last = tonumber(x[3])
  if now < last then now = last end
else
  redis.call('DEL', KEYS[4])
  xe = ARGV[8]
end
-- c counts the topics that appended in this index epoch (the topic's
-- meta x names the last epoch it was counted in), for retention.
local bump = 0
if m[6] ~= xe then bump = 1 end
xc = xc + bump
local hash, maxlen, window, channel, ttl, topic = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local xmax = '0'
if maxlen ~= '0' then xmax = string.format('%d', tonumber(maxlen) * math.max(xc, 1)) end
local nowS = string.format('%d', now)
local out = {created, e, xe}
local msg = {}
local added = 0
for i = 9, #ARGV, 4 do
  local typ, data, fp, k = ARGV[i], ARGV[i+1], ARGV[i+2], tonumber(ARGV[i+3])
  local dup = false
  if k > 0 then
    local v = redis.call('GET', KEYS[k])
    if v then
      local ke, kn, ku, kfp, kxe, kxn = string.match(v, '^(%S+) (%d+) (%d+) (%S*) (%S+) (%d+)$')
      if ke then
        local at = tonumber(ku)
        local forgotten = at < kf and tonumber(kn) <= ko
        if ke == e and now - at <= window and not forgotten then
          local id = kn .. '-' .. ku
          local ent = redis.call('XRANGE', KEYS[2], id, id)
          local fields = false
          if ent[1] then fields = ent[1][2] end
          local conflict = 0
          if kfp ~= fp then conflict = 1 end
          out[#out+1] = 1
          out[#out+1] = tonumber(kn)
          out[#out+1] = tonumber(ku)
          out[#out+1] = conflict
          out[#out+1] = fields
          out[#out+1] = kxe .. '.' .. kxn
          dup = true
        end
      end
    end
  end
  if not dup then
    n = n + 1
    xn = xn + 1
    added = added + 1
    local nS = string.format('%d', n)
    local xnS = string.format('%d', xn)
    local f = {'d', data}
    if typ ~= '' then f = {'d', data, 't', typ} end
    local xp = xe .. '.' .. xnS
    if maxlen ~= '0' then
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, nS .. '-' .. nowS, 'x', xp, unpack(f))
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', xmax, xnS .. '-' .. nowS, 'p', topic, 'e', e, 'o', nS, unpack(f))
    else
      redis.call('XADD', KEYS[2], nS .. '-' .. nowS, 'x', xp, unpack(f))
      redis.call('XADD', KEYS[4], xnS .. '-' .. nowS, 'p', topic, 'e', e, 'o', nS, unpack(f))
    end
    if k > 0 then
      redis.call('SET', KEYS[k], e .. ' ' .. nS .. ' ' .. nowS .. ' ' .. fp .. ' ' .. xe .. ' ' .. xnS, 'PX', ttl)
    end
    if channel ~= '' then
      msg[#msg+1] = hash .. '.' .. e .. '.' .. nS .. '.' .. xe .. '.' .. xnS .. ' ' .. nowS .. ' ' .. #topic .. ' ' .. #typ .. ' ' .. #data .. '\n' .. topic .. typ .. data
    end
    out[#out+1] = 0
    out[#out+1] = n
    out[#out+1] = now
    out[#out+1] = 0
    out[#out+1] = false
    out[#out+1] = xe .. '.' .. xnS
  end
end
if added > 0 or created == 1 then
  redis.call('HSET', KEYS[3], 'e', xe, 'n', string.format('%d', xn), 'u', nowS, 'c', string.format('%d', xc))
end
if added > 0 then
  redis.call('HSET', KEYS[1], 'e', e, 'n', string.format('%d', n), 'u', nowS, 'x', xe)
  if #msg > 0 then redis.call('PUBLISH', channel, table.concat(msg)) end
elseif created == 1 then
  redis.call('HSET', KEYS[1], 'e', e, 'n', 0, 'u', nowS, 'x', xe)
end
return out
`)

// indexed makes c, a call for a topic under index ix, run
// indexAppendScript: the index's keys join the topic's, before the
// idempotency keys, and the new index epoch joins the arguments.
func (s *Store) indexed(c appendCall, ix string) appendCall {
	k := s.index(ix)
	c.indexed, c.ix = true, ix
	c.keys = append(c.keys, k.meta, k.stream)
	c.args = append(c.args, newEpoch())
	return c
}

// indexedCall is the call of indexAppendScript for the records of t, a
// topic under pattern prefix ix.
func (s *Store) indexedCall(recs []store.Record, t callTopic, ix, maxLen, window, channel, ttl string) appendCall {
	k := s.keys(t.topic)
	c := s.indexed(appendCall{
		topics: []callTopic{t},
		keys:   []string{k.meta, k.stream},
		args:   []any{newEpoch(), t.hash, maxLen, window, channel, ttl, t.topic},
	}, ix)
	for _, i := range t.idx {
		rec := &recs[i]
		ki, fp := 0, ""
		if rec.IdempotencyKey != "" {
			c.keys = append(c.keys, k.idem(rec.IdempotencyKey))
			ki = len(c.keys)
			sum := store.Fingerprint(*rec)
			fp = hex.EncodeToString(sum[:])
		}
		c.args = append(c.args, rec.Type, rec.Data, fp, ki)
	}
	return c
}

// scriptHash is the script c runs.
func (c *appendCall) scriptHash() string {
	if c.indexed {
		return indexAppendScript.Hash()
	}
	return appendScript.Hash()
}

// indexResults is results for a call of indexAppendScript.
func (c *appendCall) indexResults(recs []store.Record, out []store.Appended) (created bool, err error) {
	vals, err := c.cmd.Slice()
	if err != nil {
		return false, unavailable(err)
	}
	t := c.topics[0]
	if len(vals) != 3+6*len(t.idx) {
		return false, fmt.Errorf("%w: index append script replied %d values for %d records", ErrUnavailable, len(vals), len(t.idx))
	}
	flag, _ := vals[0].(int64)
	epoch, _ := vals[1].(string)
	hash := t.hash
	for j, i := range t.idx {
		v := vals[3+6*j:]
		status, _ := v[0].(int64)
		off, _ := v[1].(int64)
		us, _ := v[2].(int64)
		conflict, _ := v[3].(int64)
		xs, _ := v[5].(string)
		id := pos{hash: hash, epoch: epoch, offset: uint64(off)}.String() + "." + xs
		if _, ix, ok := parseID(id); !ok || ix.epoch == "" {
			return false, fmt.Errorf("%w: index append script replied the index position %q", ErrUnavailable, xs)
		}
		ev := store.Event{ID: id, Topic: t.topic, Time: time.UnixMicro(us).UTC()}
		if status == 0 {
			ev.Type, ev.Data = recs[i].Type, recs[i].Data
			out[i] = store.Appended{Event: ev}
			continue
		}
		if fields, ok := v[4].([]any); ok {
			ev.Type, ev.Data = entryFields(fields)
		}
		out[i] = store.Appended{Event: ev, Duplicate: true, Conflict: conflict == 1}
	}
	return flag == 1, nil
}

// indexTrimScript applies retention to an index: by count, the topics'
// limit times its topics (meta c), so that it keeps at least what they
// keep, and by age as trimScript does. The meta stays, so that offsets go
// on after everything expired.
//
// KEYS: index stream, index meta
// ARGV: 1 max events per topic ("0": none), 2 oldest µs to keep ("0": no
// age limit).
//
// Returns the number of entries removed.
var indexTrimScript = goredis.NewScript(`
local removed = 0
if ARGV[1] ~= '0' then
  local c = tonumber(redis.call('HGET', KEYS[2], 'c') or '1')
  removed = removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', string.format('%d', tonumber(ARGV[1]) * math.max(c, 1)))
end
` + trimByAgeLua + `return removed
`)

// trimIndexes applies retention to every index. Index entries are copies:
// they do not count as removed events.
func (s *Store) trimIndexes(ctx context.Context, maxLen, ageCut string) error {
	var errs []error
	for _, ix := range s.pfx {
		k := s.index(ix)
		if err := s.evalSha(ctx, indexTrimScript, []string{k.stream, k.meta}, maxLen, ageCut).Err(); err != nil {
			err = unavailable(err)
			s.reload(err)
			errs = append(errs, fmt.Errorf("index %q: %w", ix, err))
		}
	}
	return errors.Join(errs...)
}
