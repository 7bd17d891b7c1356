-- start_entry(entry key, inflight key, id, now, running lease s, max attempts, stage):
-- begin a stage of an entry's work: renew its lease and count the attempt, unless the
-- entry ended or waits to be tried again. Returns verdict, detail, entry JSON: 'go'
-- (detail: the attempt), 'done' (detail: its state), 'waiting' (detail: 'retry_wait'),
-- 'exhausted' (detail: the attempts made) or 'missing'.
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
  if state == 'retry_wait' then
    -- A stale copy of the entry (a task delivered again after its worker died, a taken
    -- entry given back, an earlier re-enqueue): running it now would cut short the
    -- backoff, or a server's Retry-After, and spend an attempt. The sweeper enqueues the
    -- entry when its wait is over (sweep_leases.lua marks it 'queued').
    local due = tonumber(redis.call('ZSCORE', inflight_key, id) or '0')
    if due > now then
      return 'waiting', state, false
    end
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
