-- Dead-letter an entry once: record the reason, end its lease, keep its claim.
-- KEYS[1] deadletter stream  KEYS[2] entry HASH  KEYS[3] inflight ZSET
-- KEYS[4] seen:{entry}       KEYS[5] stats HASH
-- KEYS[6] the handed-over page  KEYS[7] handed ZSET
-- ARGV[1] entry id  ARGV[2] reason  ARGV[3] message JSON  ARGV[4] ttl  ARGV[5] MAXLEN
-- Returns the dead-letter stream id, or '' if the entry had already ended.
-- include: ended
local state = redis.call('HGET', KEYS[2], 'state')
if ended(state) then
  return ''
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[5], '*',
  'id', ARGV[1], 'reason', ARGV[2], 'data', ARGV[3])
redis.call('HSET', KEYS[2], 'state', 'failed', 'reason', ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('DEL', KEYS[6])
redis.call('ZREM', KEYS[7], ARGV[1])
redis.call('SET', KEYS[4], 'failed', 'EX', tonumber(ARGV[4]))
redis.call('HINCRBY', KEYS[5], 'failed', 1)
redis.call('HINCRBY', KEYS[5], 'failed:' .. ARGV[2], 1)  -- by reason, for the metrics
return id
