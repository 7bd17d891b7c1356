-- Take entries whose lease expired (their task was lost or its worker died) for re-enqueue.
-- KEYS[1]  inflight ZSET
-- ARGV[1]  now   ARGV[2]  max entries   ARGV[3]  queued lease seconds
-- Returns  the entry ids; each gets a fresh lease so that one sweeper re-enqueues it once.
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
end
return ids
