-- Publish one article outcome atomically: check, XADD, mark. All or nothing in the AOF.
-- KEYS[1] articles stream  KEYS[2] duplicates stream  KEYS[3] article:{id} HASH
-- KEYS[4] content:{hash}   KEYS[5] entry HASH         KEYS[6] inflight ZSET
-- KEYS[7] seen:{entry}     KEYS[8] stats HASH
-- ARGV[1] outcome: article | duplicate | unchanged
-- ARGV[2] article id       ARGV[3] content hash       ARGV[4] revision
-- ARGV[5] expected content hash now stored for the id ('' = none)
-- ARGV[6] expected owner of the content hash ('' = none)
-- ARGV[7] message JSON     ARGV[8] duplicate_of       ARGV[9] entry id
-- ARGV[10] ttl seconds     ARGV[11] MAXLEN            ARGV[12] MINID ('' = none)
-- Returns {'conflict', ''} when the preconditions no longer hold (the caller re-decides),
-- {'done', state} when the entry already ended (a redelivered task), else
-- {outcome, stream id or duplicate_of}.
local state = redis.call('HGET', KEYS[5], 'state')
if state == 'published' or state == 'duplicate' or state == 'unchanged' or state == 'failed' then
  return {'done', state}
end
local stored_hash = redis.call('HGET', KEYS[3], 'content_hash') or ''
local owner = redis.call('GET', KEYS[4]) or ''
if stored_hash ~= ARGV[5] or owner ~= ARGV[6] then
  return {'conflict', ''}
end
local outcome = ARGV[1]
local ttl = tonumber(ARGV[10])
local result = ''
local function add(stream)
  local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[11], '*',
    'id', ARGV[2], 'revision', ARGV[4], 'data', ARGV[7])
  if ARGV[12] ~= '' then
    redis.call('XTRIM', stream, 'MINID', '~', ARGV[12])
  end
  return id
end
if outcome == 'article' then
  result = add(KEYS[1])
  redis.call('HSET', KEYS[3], 'content_hash', ARGV[3], 'revision', ARGV[4], 'stream_id', result)
  redis.call('SET', KEYS[4], ARGV[2], 'EX', ttl)
  redis.call('HINCRBY', KEYS[8], 'published', 1)
elseif outcome == 'duplicate' then
  add(KEYS[2])
  redis.call('HSET', KEYS[3], 'content_hash', ARGV[3], 'duplicate_of', ARGV[8])
  redis.call('HINCRBY', KEYS[8], 'duplicates', 1)
  result = ARGV[8]
else
  redis.call('HINCRBY', KEYS[8], 'unchanged', 1)
end
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('HSET', KEYS[5], 'state', outcome == 'article' and 'published' or outcome,
  'article_id', ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[9])
redis.call('SET', KEYS[7], 'done', 'EX', ttl)
return {outcome, result}
