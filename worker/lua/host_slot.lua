-- take_host_slot(slots, next_key, now, token, concurrency, delay, ttl): take a request
-- slot on one host if its politeness budget allows it now. Returns 0 when the slot is
-- taken, else how many ms to wait before asking again. Included by the scripts that take
-- slots (worker/lua/__init__.py).
local function take_host_slot(slots, next_key, now, token, concurrency, delay, ttl)
  redis.call('ZREMRANGEBYSCORE', slots, '-inf', now)
  local next_start = tonumber(redis.call('GET', next_key) or '0')
  if next_start > now then
    return next_start - now
  end
  if redis.call('ZCARD', slots) >= concurrency then
    return 50
  end
  redis.call('ZADD', slots, now + ttl, token)
  redis.call('PEXPIRE', slots, ttl)
  if delay > 0 then
    redis.call('SET', next_key, now + delay, 'PX', delay + 1000)
  end
  return 0
end
