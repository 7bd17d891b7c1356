-- Take a request slot on one host if its politeness budget allows it now.
-- KEYS[1] slots ZSET (token -> expiry ms)   KEYS[2] next-start STRING (ms)
-- ARGV[1] now ms  ARGV[2] token  ARGV[3] concurrency  ARGV[4] delay ms  ARGV[5] slot ttl ms
-- Returns 0 when the slot is taken, else how many ms to wait before asking again.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local next_start = tonumber(redis.call('GET', KEYS[2]) or '0')
if next_start > now then
  return next_start - now
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 50
end
local delay = tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
if delay > 0 then
  redis.call('SET', KEYS[2], now + delay, 'PX', delay + 1000)
end
return 0
