-- Record the outcome of a poll, unless the feed was removed meanwhile.
-- KEYS[1] feed HASH  KEYS[2] feeds:due ZSET  KEYS[3] stats HASH
-- ARGV[1] feed id  ARGV[2] next poll time ('' = leave the schedule alone)
-- ARGV[3] stats counter to increment ('' = none), then field/value pairs
-- Returns 1 if written, 0 if the feed no longer exists.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 4))
end
if ARGV[2] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
end
return 1
