-- Take up to ARGV[2] entry ids for one fused task, round robin over the hosts that have
-- entries queued (one entry from each host in turn), and note them under the task, so
-- that a new delivery of the task can give them back.
-- KEYS[1]  the ring of hosts LIST   KEYS[2]  the task's taken LIST
-- ARGV[1]  the prefix of the per-host queues   ARGV[2]  how many
-- ARGV[3]  seconds the taken list outlives its last change
-- A host stays in the ring while its queue holds entries (queue_for_ingest.lua).
-- Returns  the ids taken (none when nothing is queued).
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
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
end
return ids
