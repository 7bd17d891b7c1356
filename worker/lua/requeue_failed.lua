-- Give dead-lettered entries another go (`newswire deadletter retry`): an entry still
-- 'failed' becomes 'queued' again, its attempts cleared and its claim a lease again, with
-- a lease that has already run out, so that the sweeper enqueues its work at its next
-- turn (the scheduler's, every sweep_interval_s) exactly as for a lost task.
-- KEYS[1]  inflight ZSET
-- ARGV[1]  now   ARGV[2]  the prefix of entry HASHes   ARGV[3]  the prefix of claims
-- ARGV[4]  claim ttl seconds   ARGV[5]  the reasons to retry, comma-separated ('': any)
-- ARGV[6]  '1': a dry run (nothing changes)   ARGV[7..]  entry ids
-- Returns  the ids requeued (or, dry run, that would be). Others are left alone: published
-- or retried since, failed again for another reason, or gone (their record outlived by
-- the dead letter).
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[4])
local wanted = {}
for reason in string.gmatch(ARGV[5], '[^,]+') do wanted[reason] = true end
local requeued = {}
for i = 7, #ARGV do
  local id = ARGV[i]
  local entry_key = ARGV[2] .. id
  local record = redis.call('HMGET', entry_key, 'state', 'reason')
  if record[1] == 'failed' and (ARGV[5] == '' or wanted[record[2]]) then
    if ARGV[6] ~= '1' then
      redis.call('HDEL', entry_key, 'reason', 'attempts_fetch', 'attempts_extract')
      -- the latency histogram counts from here: the wait before the retry was the failure's
      redis.call('HSET', entry_key, 'state', 'queued', 'claimed_at', ARGV[1])
      redis.call('EXPIRE', entry_key, ttl)
      redis.call('SET', ARGV[3] .. id, 'leased', 'EX', ttl)
      redis.call('ZADD', KEYS[1], now, id)
    end
    requeued[#requeued + 1] = id
  end
end
return requeued
