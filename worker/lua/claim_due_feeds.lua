-- Claim feeds whose next poll time has come, so exactly one scheduler enqueues each poll.
-- KEYS[1]  feeds:due ZSET (feed id -> next poll time)
-- ARGV[1]  now (unix seconds)       ARGV[2]  max feeds to claim
-- ARGV[3]  poll lease seconds       ARGV[4]  feed hash key prefix ("<prefix>:feed:")
-- ARGV[5]  nonce, unique per call
-- Returns  {feed_id, token, feed_id, token, ...}
-- Each claimed feed is pushed a lease into the future (if its poll is lost it comes due
-- again) and gets a one-time token; only the poll task carrying that token may run.
local now = tonumber(ARGV[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i, id in ipairs(ids) do
  local token = ARGV[5] .. ':' .. i
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), id)
  redis.call('HSET', ARGV[4] .. id, 'poll_token', token)
  out[#out + 1] = id
  out[#out + 1] = token
end
return out
