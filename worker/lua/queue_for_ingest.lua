-- Queue entries for the fused article path, each behind the others of its host: one
-- LIST per host, and a ring of the hosts that have entries queued (take_for_ingest
-- serves the ring round robin, so a big backlog from one polite host does not hold up
-- every other host's entries behind it).
-- KEYS[1]  the ring of hosts LIST   KEYS[2]  the ingest activity STRING
-- KEYS[3]  inflight ZSET
-- KEYS[4]  (giving back) the taken LIST of a fused task whose earlier delivery died
-- ARGV[1]  the prefix of the per-host queues   ARGV[2]  the prefix of entry HASHes
-- ARGV[3]  now (the activity's time: a task is on its way)
-- ARGV[4]  the lease of an entry in the ingest queue, seconds
-- ARGV[5..] (queueing) entry ids, in order
-- New entries go to the tail of their host's queue. Given-back entries go to the head of
-- theirs and their hosts to the head of the ring, so that they are taken again in the
-- order they were taken; the taken list is deleted.
-- The per-host queue and entry keys are computed here from their prefixes: this script
-- assumes a single Redis, not a cluster. An entry whose record is gone is queued under
-- the host '' (its task finds it missing and moves on; nothing is dropped unseen).
-- Returns  the ids queued.
-- The host an entry's record names ('' without a record or URL), and its state.
local function host_and_state(entry_key)
  local fields = redis.call('HMGET', entry_key, 'entry', 'state')
  local record, state = fields[1], fields[2]
  if not record then return '', state end
  local ok, entry = pcall(cjson.decode, record)
  if not ok or type(entry) ~= 'table' or type(entry.url) ~= 'string' then return '', state end
  local authority = string.match(entry.url, '^%a[%w+.-]*://([^/?#]*)') or ''
  authority = string.gsub(authority, '^.*@', '')
  local bracketed = string.match(authority, '^(%[[^%]]*%])')
  if bracketed then return string.lower(bracketed), state end
  return string.lower((string.gsub(authority, ':%d*$', ''))), state
end

-- An entry in this queue, a LIST of our own, is not lost with a broker's message: its
-- lease runs as long as ARGV[4] says, so that the sweeper does not enqueue a second copy
-- of an entry a long backlog holds (a lost wake-up task is the sweeper's stall check's
-- to catch). An entry waiting for another try keeps its due time; an ended one is not
-- in flight.
local function lease(id, state)
  if state == 'queued' or state == 'fetch' then
    redis.call('ZADD', KEYS[3], 'XX', tonumber(ARGV[3]) + tonumber(ARGV[4]), id)
  end
end

local function queue(id)
  local host, state = host_and_state(ARGV[2] .. id)
  lease(id, state)
  if redis.call('RPUSH', ARGV[1] .. host, id) == 1 then
    redis.call('RPUSH', KEYS[1], host)
  end
end

local function give_back(id)
  local host, state = host_and_state(ARGV[2] .. id)
  lease(id, state)
  redis.call('LPUSH', ARGV[1] .. host, id)
  redis.call('LREM', KEYS[1], 1, host)  -- a host is in the ring once at most
  redis.call('LPUSH', KEYS[1], host)
end

redis.call('SET', KEYS[2], ARGV[3])
if KEYS[4] then
  local ids = redis.call('LRANGE', KEYS[4], 0, -1)
  for i = #ids, 1, -1 do give_back(ids[i]) end  -- backwards: the first ends up first
  redis.call('DEL', KEYS[4])
  return ids
end
local ids = {}
for i = 5, #ARGV do
  queue(ARGV[i])
  ids[#ids + 1] = ARGV[i]
end
return ids
