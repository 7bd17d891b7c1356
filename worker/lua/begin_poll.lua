-- Consume a poll token: a redelivered or duplicated poll task finds it gone and stops.
-- KEYS[1]  feed HASH      ARGV[1]  token
-- Returns  1 if this task may poll, 0 otherwise.
if redis.call('HGET', KEYS[1], 'poll_token') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'poll_token')
  return 1
end
return 0
