-- Give back to the head of the ingest queue, in their order, the ids that an earlier
-- delivery of a fused task took (its process died with them), and forget them.
-- KEYS[1]  ingest queue LIST   KEYS[2]  the task's taken LIST
-- Returns  the ids given back.
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
if #ids > 0 then
  for i = #ids, 1, -1 do
    redis.call('LPUSH', KEYS[1], ids[i])
  end
  redis.call('DEL', KEYS[2])
end
return ids
