-- Consume a poll token and return the feed's record in the same step.
-- KEYS[1]  feed HASH      ARGV[1]  token
-- Returns  the HGETALL of the feed if this task may poll, else an empty list
-- (a redelivered or duplicated poll task finds its token gone and stops).
if redis.call('HGET', KEYS[1], 'poll_token') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'poll_token')
  return redis.call('HGETALL', KEYS[1])
end
return {}
