package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts touch only keys of one topic, which share its hash tag and so
// one Cluster slot. Numbers that may pass 2^31 are formatted with %d, since
// Lua's tostring would print a microsecond time in exponent form.

// appendScript stores a batch's records, topic by topic and each topic's
// in order, each atomically with its checks (the script as a whole is
// atomic): the topic's epoch (made with its first event), each record's
// idempotency check, the XADD with the next offset, the idempotency key
// with its expiry, and one PUBLISH of all the new events for the other hub
// processes. One call for many records keeps Lua's per-call cost (TIME,
// the reply, the PUBLISH) off each record; on a Cluster a call holds the
// topics of one hash slot.
//
// KEYS: per topic: meta, stream, then its records' idempotency keys.
// ARGV: 1 max length ("0": none), 2 window in µs, 3 channel ("": none), 4
// the keys' expiry in ms; then per topic: new epoch, topic hash, topic,
// its number of records, its number of idempotency keys, and four per
// record: type, data, fingerprint, index of its key among the topic's (0:
// none). A key older than the window is forgotten, and so is one that
// Trim forgot: stored before the meta's kf, for an offset up to its ko.
//
// Returns per topic {created, epoch, last offset before the call, µs of
// its new events, then per duplicate record: its index among the topic's
// records (from 1), offset, µs, conflict, fields or false}. The records
// that are not duplicates took the next offsets in order: the reply does
// not repeat them, so that its size and parsing do not grow with them.
//
// The feed message is, per event, "<id> <µs> <len topic> <len type> <len
// data>\n" followed by topic, type and data.
var appendScript = goredis.NewScript(`
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local maxlen, window, channel, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local out, msg = {}, {}
local a, kb = 5, 0
while a <= #ARGV do
  local newE, hash, topic, count, nkeys = ARGV[a], ARGV[a+1], ARGV[a+2], tonumber(ARGV[a+3]), tonumber(ARGV[a+4])
  a = a + 5
  local meta, stream = KEYS[kb+1], KEYS[kb+2]
  local now = clock
  local m = redis.call('HMGET', meta, 'e', 'n', 'u', 'kf', 'ko')
  local e, n, created = m[1], 0, 0
  local kf, ko = tonumber(m[4] or '0'), tonumber(m[5] or '0')
  if e then
    n = tonumber(m[2])
    local last = tonumber(m[3])
    if now < last then now = last end
  else
    -- A stream without its meta is left from a lost epoch (the meta was
    -- evicted): its entries would collide with the new epoch's.
    redis.call('DEL', stream)
    e = newE
    created = 1
  end
  local nowS = string.format('%d', now)
  local idTail = '-' .. nowS
  local pre, mid = hash .. '.' .. e .. '.', ' ' .. nowS .. ' ' .. #topic .. ' '
  local res = {created, e, n, now}
  local n0 = n
  for j = 1, count do
    local typ, data, fp, k = ARGV[a], ARGV[a+1], ARGV[a+2], tonumber(ARGV[a+3])
    a = a + 4
    local dup = false
    if k > 0 then
      local v = redis.call('GET', KEYS[kb+2+k])
      if v then
        local ke, kn, ku, kfp = string.match(v, '^(%S+) (%d+) (%d+) (%S*)$')
        local at = tonumber(ku)
        local forgotten = at < kf and tonumber(kn) <= ko
        if ke == e and now - at <= window and not forgotten then
          local id = kn .. '-' .. ku
          local ent = redis.call('XRANGE', stream, id, id)
          local fields = false
          if ent[1] then fields = ent[1][2] end
          local conflict = 0
          if kfp ~= fp then conflict = 1 end
          res[#res+1] = j
          res[#res+1] = tonumber(kn)
          res[#res+1] = at
          res[#res+1] = conflict
          res[#res+1] = fields
          dup = true
        end
      end
    end
    if not dup then
      n = n + 1
      local nS = string.format('%d', n)
      if maxlen ~= '0' then
        if typ ~= '' then
          redis.call('XADD', stream, 'MAXLEN', '~', maxlen, nS .. idTail, 'd', data, 't', typ)
        else
          redis.call('XADD', stream, 'MAXLEN', '~', maxlen, nS .. idTail, 'd', data)
        end
      elseif typ ~= '' then
        redis.call('XADD', stream, nS .. idTail, 'd', data, 't', typ)
      else
        redis.call('XADD', stream, nS .. idTail, 'd', data)
      end
      if k > 0 then
        redis.call('SET', KEYS[kb+2+k], e .. ' ' .. nS .. ' ' .. nowS .. ' ' .. fp, 'PX', ttl)
      end
      if channel ~= '' then
        msg[#msg+1] = pre .. nS .. mid .. #typ .. ' ' .. #data .. '\n' .. topic .. typ .. data
      end
    end
  end
  if n > n0 then
    redis.call('HSET', meta, 'e', e, 'n', string.format('%d', n), 'u', nowS)
  elseif created == 1 then
    redis.call('HSET', meta, 'e', e, 'n', 0, 'u', nowS)
  end
  out[#out+1] = res
  kb = kb + 2 + nkeys
end
if #msg > 0 then redis.call('PUBLISH', channel, table.concat(msg)) end
return out
`)

// readScript reads a topic's epoch, last offset and events from a start
// offset, atomically, so that the events belong to the epoch returned.
//
// KEYS: meta, stream
// ARGV: 1 the reader's epoch, 2 first offset to read when the epoch is the
// topic's (else from the oldest), 3 count.
//
// Returns {epoch or false, last offset, last µs, entries}.
var readScript = goredis.NewScript(`
local m = redis.call('HMGET', KEYS[1], 'e', 'n', 'u')
if not m[1] then return {false, 0, 0, {}} end
local start = '-'
if ARGV[1] == m[1] then start = ARGV[2] end
return {m[1], tonumber(m[2]), tonumber(m[3]), redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[3])}
`)

// trimByAgeLua is the part of trimScript and indexTrimScript that removes
// the entries of the stream KEYS[1] (entry IDs <offset>-<commit µs>)
// committed before ARGV[2] µs ("0": none), adding their number to the
// script's local removed.
const trimByAgeLua = `local cutoff = tonumber(ARGV[2])
if cutoff > 0 then
  while true do
    local ents = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 256)
    if #ents == 0 then break end
    local keep = nil
    for _, ent in ipairs(ents) do
      local off, us = string.match(ent[1], '^(%d+)-(%d+)$')
      if tonumber(us) >= cutoff then keep = off break end
    end
    if keep then
      removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', keep)
      break
    end
    local off = string.match(ents[#ents][1], '^(%d+)-')
    removed = removed + redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d', tonumber(off) + 1))
  end
end
`

// trimScript applies retention to one topic and forgets its idempotency
// keys from before a time: it sets the meta's kf to that time and ko to
// the last offset, and the append script treats a key of an event up to
// ko stored before kf as new (Redis's own expiry frees keys a little after
// the window). The topic's
// meta (epoch, last offset) stays, so that its offsets go on after
// everything expired.
//
// KEYS: stream, meta
// ARGV: 1 max length ("0": none), 2 oldest µs to keep ("0": no age
// limit), 3 idempotency keys from before this µs are forgotten.
//
// Returns the number of events removed.
var trimScript = goredis.NewScript(`
local removed = 0
if ARGV[1] ~= '0' then
  removed = removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', ARGV[1])
end
` + trimByAgeLua + `local m = redis.call('HMGET', KEYS[2], 'e', 'n', 'kf')
if m[1] and tonumber(ARGV[3]) >= tonumber(m[3] or '0') then
  redis.call('HSET', KEYS[2], 'kf', ARGV[3], 'ko', m[2])
end
return removed
`)

// epochScript starts a new epoch of a topic whose history went back (Redis
// restored an older snapshot, or a replica that had not received the
// newest events took over): its offsets would otherwise be given again to
// new events, under IDs that readers already hold. It does so only if the
// topic still has the epoch the caller saw (another process may have
// started the new one first).
//
// KEYS: meta
// ARGV: 1 epoch seen, 2 new epoch
//
// Returns the topic's epoch after the call.
var epochScript = goredis.NewScript(`
local e = redis.call('HGET', KEYS[1], 'e')
if e == ARGV[1] then
  redis.call('HSET', KEYS[1], 'e', ARGV[2])
  return ARGV[2]
end
return e
`)

var scripts = []*goredis.Script{appendScript, readScript, trimScript, epochScript}
