-- start_entry(entry key, inflight key, id, now, running lease s, max attempts, stage):
-- begin a stage of an entry's work: renew its lease and count the attempt, unless the
-- entry ended. Returns verdict, detail, entry JSON: 'go' (detail: the attempt), 'done'
-- (detail: its state), 'exhausted' (detail: the attempts made) or 'missing'.
-- Included by start_stage.lua and take_for_ingest.lua (worker/lua/__init__.py).
-- include: ended
local function start_entry(entry_key, inflight_key, id, now, lease_s, max_attempts, stage)
  local state = redis.call('HGET', entry_key, 'state')
  if not state then
    return 'missing', '', false
  end
  if ended(state) then
    return 'done', state, false
  end
  local entry = redis.call('HGET', entry_key, 'entry')
  local attempts = redis.call('HINCRBY', entry_key, 'attempts_' .. stage, 1)
  if attempts > max_attempts then
    return 'exhausted', tostring(attempts - 1), entry
  end
  redis.call('HSET', entry_key, 'state', stage)
  redis.call('ZADD', inflight_key, now + lease_s, id)
  return 'go', tostring(attempts), entry
end
