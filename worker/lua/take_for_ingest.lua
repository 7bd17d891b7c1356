-- Take up to ARGV[2] entry ids for one fused task, round robin over the hosts that have
-- entries queued (one entry from each host in turn), note them under the task, so that
-- a new delivery of the task can give them back, and begin the fetch stage of each (as
-- start_stage.lua does: the fetch threads start at once, and need no round trip of
-- their own).
-- KEYS[1]  the ring of hosts LIST   KEYS[2]  the task's taken LIST   KEYS[3]  inflight ZSET
-- KEYS[4]  the ingest activity STRING (set to now: a task is taking, even if it finds none)
-- ARGV[1]  the prefix of the per-host queues   ARGV[2]  how many
-- ARGV[3]  seconds the taken list outlives its last change
-- ARGV[4]  the prefix of entry HASHes   ARGV[5]  now   ARGV[6]  running lease seconds
-- ARGV[7]  max attempts
-- A host stays in the ring while its queue holds entries (queue_for_ingest.lua).
-- Returns  {id, verdict, detail, entry JSON or false, ...}: four items a taken entry
-- (none when nothing is queued).
-- include: start_entry
redis.call('SET', KEYS[4], ARGV[5])
local ids, wanted = {}, tonumber(ARGV[2])
while #ids < wanted do
  local host = redis.call('LPOP', KEYS[1])
  if not host then break end
  local queue = ARGV[1] .. host
  -- the only host queued: no turn to wait for, so take all we want at once
  local alone = redis.call('LLEN', KEYS[1]) == 0
  local popped = redis.call('LPOP', queue, alone and (wanted - #ids) or 1) or {}
  for _, id in ipairs(popped) do ids[#ids + 1] = id end
  if redis.call('LLEN', queue) > 0 then
    redis.call('RPUSH', KEYS[1], host)  -- its next entry waits for the other hosts' turn
  end
end
if #ids == 0 then return {} end
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local now, lease_s, max_attempts = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local started = {}
for _, id in ipairs(ids) do
  local verdict, detail, entry = start_entry(
    ARGV[4] .. id, KEYS[3], id, now, lease_s, max_attempts, 'fetch')
  started[#started + 1] = id
  started[#started + 1] = verdict
  started[#started + 1] = detail
  started[#started + 1] = entry
end
return started
