-- Begin a stage of an entry's work: renew its lease, count the attempt, and return what
-- the stage needs (the entry, and for extraction the fetched page) in the same step.
-- KEYS[1]  entry HASH   KEYS[2]  inflight ZSET   KEYS[3]  page HASH ('' when not wanted)
-- ARGV[1]  entry id   ARGV[2]  now   ARGV[3]  running lease seconds
-- ARGV[4]  max attempts   ARGV[5]  stage name (fetch, extract)
-- Returns  {verdict, detail, entry JSON, page url, fetched at, html} where verdict is
-- 'go' (detail: attempt), 'done' (detail: state), 'exhausted' (detail: attempts made)
-- or 'missing'; the page fields are false when there is no page.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'missing', ''}
end
if state == 'published' or state == 'duplicate' or state == 'unchanged' or state == 'failed' then
  return {'done', state}
end
local entry = redis.call('HGET', KEYS[1], 'entry')
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts_' .. ARGV[5], 1)
if attempts > tonumber(ARGV[4]) then
  return {'exhausted', tostring(attempts - 1), entry}
end
redis.call('HSET', KEYS[1], 'state', ARGV[5])
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]), ARGV[1])
if KEYS[3] ~= '' then
  local page = redis.call('HMGET', KEYS[3], 'url', 'fetched_at', 'html')
  return {'go', tostring(attempts), entry, page[1], page[2], page[3]}
end
return {'go', tostring(attempts), entry}
