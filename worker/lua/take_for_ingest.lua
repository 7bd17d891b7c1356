-- Take up to ARGV[1] entry ids from the head of the ingest queue for one fused task, and
-- note them under the task, so that a new delivery of the task can give them back.
-- KEYS[1]  ingest queue LIST   KEYS[2]  the task's taken LIST
-- ARGV[1]  how many   ARGV[2]  seconds the taken list outlives its last change
-- Returns  the ids taken (none when the queue is empty).
local ids = redis.call('LPOP', KEYS[1], tonumber(ARGV[1]))
if not ids then
  return {}
end
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return ids
