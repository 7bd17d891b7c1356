-- Take entries whose lease expired (their task was lost or its worker died, or their wait
-- before another try is over) for re-enqueue.
-- KEYS[1]  inflight ZSET
-- ARGV[1]  now   ARGV[2]  max entries   ARGV[3]  queued lease seconds
-- ARGV[4]  the prefix of entry HASHes
-- Returns  the entry ids; each gets a fresh lease so that one sweeper re-enqueues it once.
-- An entry that waited to be tried again is 'queued' again: start_entry.lua turns away
-- the copies of a waiting entry, and this one must run.
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
  local entry_key = ARGV[4] .. id
  if redis.call('HGET', entry_key, 'state') == 'retry_wait' then
    redis.call('HSET', entry_key, 'state', 'queued')
  end
end
return ids
