-- Begin a stage of an entry's work: renew its lease and count the attempt.
-- KEYS[1]  entry HASH   KEYS[2]  inflight ZSET
-- ARGV[1]  entry id   ARGV[2]  now   ARGV[3]  running lease seconds
-- ARGV[4]  max attempts   ARGV[5]  stage name (fetch, extract)
-- Returns  {'go', attempts} | {'done', state} | {'exhausted', attempts} | {'missing', ''}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'missing', ''}
end
if state == 'published' or state == 'duplicate' or state == 'unchanged' or state == 'failed' then
  return {'done', state}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts_' .. ARGV[5], 1)
if attempts > tonumber(ARGV[4]) then
  return {'exhausted', tostring(attempts - 1)}
end
redis.call('HSET', KEYS[1], 'state', ARGV[5])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
return {'go', tostring(attempts)}
