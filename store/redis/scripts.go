package redis

import goredis "github.com/redis/go-redis/v9"

// The scripts touch only keys of one topic, which share its hash tag and so
// one Cluster slot. Numbers that may pass 2^31 are formatted with %d, since
// Lua's tostring would print a microsecond time in exponent form.

// appendScript stores one record of a topic atomically: the topic's epoch
// (made with its first event), the idempotency check, the XADD with the
// next offset, the idempotency key with its expiry, and the PUBLISH that
// the other hub processes follow.
//
// KEYS: meta, stream[, idempotency key, idempotency index]
// ARGV: 1 new epoch, 2 topic hash, 3 max length ("0": none), 4 window in
// µs, 5 fingerprint, 6 type, 7 data, 8 topic, 9 channel ("": none), 10 the
// idempotency key as the index names it, 11 the key's expiry in ms.
//
// Returns {0, epoch, offset, µs, created} for a stored event and {1,
// epoch, offset, µs, conflict, fields or false} for a duplicate.
var appendScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local e = redis.call('HGET', KEYS[1], 'e')
local created = 0
if not e then
  e = ARGV[1]
  redis.call('HSET', KEYS[1], 'e', e, 'n', 0, 'u', 0)
  created = 1
end
if #KEYS > 2 then
  local v = redis.call('GET', KEYS[3])
  if v then
    local ke, kn, ku, kfp = string.match(v, '^(%S+) (%d+) (%d+) (%S*)$')
    if ke == e and now - tonumber(ku) <= tonumber(ARGV[4]) then
      local id = kn .. '-' .. ku
      local ent = redis.call('XRANGE', KEYS[2], id, id)
      local fields = false
      if ent[1] then fields = ent[1][2] end
      local conflict = 0
      if kfp ~= ARGV[5] then conflict = 1 end
      return {1, ke, tonumber(kn), tonumber(ku), conflict, fields}
    end
  end
end
local last = tonumber(redis.call('HGET', KEYS[1], 'u'))
if now < last then now = last end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
local nowS = string.format('%d', now)
local nS = string.format('%d', n)
redis.call('HSET', KEYS[1], 'u', nowS)
local args = {'XADD', KEYS[2]}
if ARGV[3] ~= '0' then
  table.insert(args, 'MAXLEN')
  table.insert(args, '~')
  table.insert(args, ARGV[3])
end
table.insert(args, nS .. '-' .. nowS)
table.insert(args, 'd')
table.insert(args, ARGV[7])
if ARGV[6] ~= '' then
  table.insert(args, 't')
  table.insert(args, ARGV[6])
end
redis.call(unpack(args))
if #KEYS > 2 then
  redis.call('SET', KEYS[3], e .. ' ' .. nS .. ' ' .. nowS .. ' ' .. ARGV[5], 'PX', ARGV[11])
  redis.call('ZADD', KEYS[4], nowS, ARGV[10])
end
if ARGV[9] ~= '' then
  redis.call('PUBLISH', ARGV[9], ARGV[2] .. '.' .. e .. '.' .. nS .. ' ' .. nowS .. ' ' .. #ARGV[8] .. ' ' .. #ARGV[6] .. '\n' .. ARGV[8] .. ARGV[6] .. ARGV[7])
end
return {0, e, n, now, created}
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

// trimScript applies retention to one topic and forgets its expired
// idempotency keys. The topic's meta (epoch, last offset) stays, so that
// its offsets go on after everything expired.
//
// KEYS: stream, idempotency index
// ARGV: 1 max length ("0": none), 2 oldest µs to keep ("0": no age
// limit), 3 idempotency keys from before this µs are forgotten, 4 the
// prefix of the topic's idempotency keys.
//
// Returns the number of events removed.
var trimScript = goredis.NewScript(`
local removed = 0
if ARGV[1] ~= '0' then
  removed = removed + redis.call('XTRIM', KEYS[1], 'MAXLEN', '=', ARGV[1])
end
local cutoff = tonumber(ARGV[2])
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
while true do
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3], 'LIMIT', 0, 256)
  if #old == 0 then break end
  for _, k in ipairs(old) do
    redis.call('DEL', ARGV[4] .. k)
    redis.call('ZREM', KEYS[2], k)
  end
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
