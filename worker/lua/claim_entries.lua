-- Claim feed entries before anything is fetched; return the ones nobody had claimed.
-- KEYS[1]  inflight ZSET (entry id -> lease deadline)
-- ARGV[1]  now   ARGV[2]  queued lease seconds   ARGV[3]  key prefix   ARGV[4]  ttl seconds
-- ARGV[5]  feed id, then pairs: entry id, entry JSON
-- A claim is a lease tracked in the inflight ZSET until the publish script makes it final.
local now = tonumber(ARGV[1])
local deadline = now + tonumber(ARGV[2])
local prefix = ARGV[3]
local ttl = tonumber(ARGV[4])
local new = {}
for i = 6, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('SET', prefix .. ':seen:' .. id, 'leased', 'NX', 'EX', ttl) then
    local ekey = prefix .. ':entry:' .. id
    redis.call('HSET', ekey, 'entry', ARGV[i + 1], 'feed_id', ARGV[5], 'state', 'queued',
      'claimed_at', ARGV[1])
    redis.call('EXPIRE', ekey, ttl)
    redis.call('ZADD', KEYS[1], deadline, id)
    new[#new + 1] = id
  end
end
return new
