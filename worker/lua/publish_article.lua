-- Publish one article atomically: decide (unchanged, exact or near duplicate, new
-- revision, original), XADD, index and mark, all in one step (all or nothing in the AOF).
-- Two near-identical articles published at the same instant by two workers therefore
-- yield exactly one original: the second one finds the first in the index.
--
-- KEYS[1] articles stream  KEYS[2] duplicates stream  KEYS[3] article:{id} HASH
-- KEYS[4] content:{hash}   KEYS[5] entry HASH         KEYS[6] inflight ZSET
-- KEYS[7] seen:{entry}     KEYS[8] stats HASH         KEYS[9] the handed-over page
-- KEYS[10] handed ZSET (pages waiting for extraction)
-- ARGV[1] entry id   ARGV[2] article id   ARGV[3] content hash
-- ARGV[4] the message JSON after its opening brace, without schema and revision
-- ARGV[5] ttl seconds   ARGV[6] MAXLEN   ARGV[7] MINID ('' = none)
-- Near-duplicate index (ARGV[8] = '' disables it):
-- ARGV[8] key prefix   ARGV[9] similarity threshold   ARGV[10] current generation
-- ARGV[11] generations to search   ARGV[12] generation ttl seconds
-- ARGV[13] signature low bytes (32 bytes)   ARGV[14] 16 band tags (2 bytes each)
-- ARGV[15] the 16 bucket numbers, comma-separated   ARGV[16] article id (16 raw bytes)
-- ARGV[17] now (the publishing worker's clock)   ARGV[18] latency bucket bounds, seconds,
-- comma-separated (worker/publish/latency.py)
-- The index keys (<prefix>:ndh:<generation>, a HASH of bucket -> 6-byte entries
-- band tag|seq, and <prefix>:ndlog:<n> holding 48-byte records signature|id) are
-- computed here from the prefix: this script assumes a single Redis, not a cluster.
-- One HASH per generation: a lookup is one HMGET of the 16 buckets per generation, an
-- insert one HSET (16 strings per generation cost 6 times as many calls, ~100 an article).
-- Values are rewritten whole rather than APPENDed: APPEND leaves strings with up to
-- twice the room they need, and the index is meant to cost ~150 bytes an article.
--
-- Returns {'done', state} | {'unchanged', id} | {'duplicate', original id, similarity}
--       | {'article', stream id, revision}
-- include: ended

local state = redis.call('HGET', KEYS[5], 'state')
if ended(state) then
  return {'done', state}
end

local id, digest, rest, ttl = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ENTRY, TAG, LOG_RECORD, LOG_SPAN, MAX_CANDIDATES = 6, 2, 48, 1024, 256

-- The entry's latency, claim to end, into the histogram in the stats HASH.
local function count_latency()
  local claimed = tonumber(redis.call('HGET', KEYS[5], 'claimed_at'))
  if not claimed then
    return
  end
  local seconds = math.max(tonumber(ARGV[17]) - claimed, 0)
  local bucket = 'inf'
  for bound in string.gmatch(ARGV[18], '[^,]+') do
    if seconds <= tonumber(bound) then
      bucket = bound
      break
    end
  end
  redis.call('HINCRBY', KEYS[8], 'latency_le_' .. bucket, 1)
  redis.call('HINCRBY', KEYS[8], 'latency_ms', math.floor(seconds * 1000 + 0.5))
end

local function finish(outcome, counter)
  count_latency()
  redis.call('DEL', KEYS[9])
  redis.call('ZREM', KEYS[10], ARGV[1])
  redis.call('HSET', KEYS[5], 'state', outcome, 'article_id', id)
  redis.call('ZREM', KEYS[6], ARGV[1])
  redis.call('SET', KEYS[7], 'done', 'EX', ttl)
  redis.call('HINCRBY', KEYS[8], counter, 1)
end

local function add(stream, message)
  local sid = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*',
    'id', id, 'data', message)
  if ARGV[7] ~= '' then
    redis.call('XTRIM', stream, 'MINID', '~', ARGV[7])
  end
  return sid
end

local function duplicate(original, similarity)
  local message = '{"schema":"newswire.duplicate/1","revision":1,"duplicate_of":"' .. original
    .. '","similarity":' .. string.format('%.4f', similarity) .. ',' .. rest
  add(KEYS[2], message)
  redis.call('HSET', KEYS[3], 'content_hash', digest, 'duplicate_of', original)
  redis.call('EXPIRE', KEYS[3], ttl)
  finish('duplicate', 'duplicates')
  return {'duplicate', original, string.format('%.4f', similarity)}
end

local function hex(raw)
  return (string.gsub(raw, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

local function buckets()
  local list = {}
  for n in string.gmatch(ARGV[15], '[^,]+') do list[#list + 1] = n end
  return list
end

-- Candidates share a band with us; the best one by estimated similarity wins.
-- Also returns the current generation's buckets, which the insert extends.
local function nearest(list)
  local prefix, signature, band_values = ARGV[8], ARGV[13], ARGV[14]
  local seqs, count, current = {}, 0, {}
  local now = tonumber(ARGV[10])
  for generation = now, now - tonumber(ARGV[11]), -1 do
    local values = redis.call('HMGET', prefix .. ':ndh:' .. generation, unpack(list))
    if generation == now then current = values end
    for i = 1, #list do
      local packed = values[i]
      if packed then
        local band = string.sub(band_values, (i - 1) * TAG + 1, i * TAG)
        local from = 1
        while count < MAX_CANDIDATES do
          local at = string.find(packed, band, from, true)
          if not at then break end
          if (at - 1) % ENTRY == 0 then
            local seq = struct.unpack('>I4', packed, at + TAG)
            if not seqs[seq] then seqs[seq] = true; count = count + 1 end
            from = at + ENTRY
          else
            from = at + 1
          end
        end
      end
    end
  end
  local best, best_similarity = nil, -1
  for seq in pairs(seqs) do
    local offset = (seq % LOG_SPAN) * LOG_RECORD
    local record = redis.call('GETRANGE', prefix .. ':ndlog:' .. math.floor(seq / LOG_SPAN),
      offset, offset + LOG_RECORD - 1)
    if #record == LOG_RECORD then
      local same = 0
      for j = 1, 32 do
        if string.byte(record, j) == string.byte(signature, j) then same = same + 1 end
      end
      local similarity = math.max((same / 32 - 1 / 256) / (1 - 1 / 256), 0)
      if similarity > best_similarity then best, best_similarity = record, similarity end
    end
  end
  if best and best_similarity >= tonumber(ARGV[9]) then
    local original = hex(string.sub(best, 33, 48))
    if original ~= id then return original, best_similarity, current end
  end
  return nil, 0, current
end

local function extend(key, data, expire, at)
  local value = redis.call('GET', key) or ''
  if at and #value < at then value = value .. string.rep('\0', at - #value) end
  redis.call('SET', key, value .. data, 'EX', expire)
end

-- current: the generation's values of our buckets, as HMGET returned them (false: none)
local function index(list, current)
  local prefix = ARGV[8]
  local seq = redis.call('INCR', prefix .. ':nd:seq')
  extend(prefix .. ':ndlog:' .. math.floor(seq / LOG_SPAN), ARGV[13] .. ARGV[16], ttl,
    (seq % LOG_SPAN) * LOG_RECORD)
  local packed = struct.pack('>I4', seq)
  local values, order = {}, {}
  for i, bucket in ipairs(list) do
    if values[bucket] == nil then
      values[bucket] = current[i] or ''
      order[#order + 1] = bucket
    end
    -- two bands may share a bucket: both entries go in
    values[bucket] = values[bucket] .. string.sub(ARGV[14], (i - 1) * TAG + 1, i * TAG) .. packed
  end
  local args = {}
  for _, bucket in ipairs(order) do
    args[#args + 1] = bucket
    args[#args + 1] = values[bucket]
  end
  local key = prefix .. ':ndh:' .. ARGV[10]
  redis.call('HSET', key, unpack(args))
  redis.call('EXPIRE', key, tonumber(ARGV[12]))
end

local stored = redis.call('HGET', KEYS[3], 'content_hash')
if stored == digest then
  finish('unchanged', 'unchanged')
  return {'unchanged', id}
end
local owner = redis.call('GET', KEYS[4])
if owner and owner ~= id then
  return duplicate(owner, 1)
end
local revision = tonumber(redis.call('HGET', KEYS[3], 'revision') or '0')
local near = ARGV[8] ~= '' and revision == 0
local list, current
if near then
  list = buckets()
  local original, similarity
  original, similarity, current = nearest(list)
  if original then return duplicate(original, similarity) end
end
revision = revision + 1
local sid = add(KEYS[1], '{"schema":"newswire.article/1","revision":' .. revision .. ',' .. rest)
redis.call('HSET', KEYS[3], 'content_hash', digest, 'revision', revision, 'stream_id', sid)
redis.call('HDEL', KEYS[3], 'duplicate_of')
redis.call('EXPIRE', KEYS[3], ttl)
redis.call('SET', KEYS[4], id, 'EX', ttl)
if near then index(list, current) end
finish('published', 'published')
return {'article', sid, tostring(revision)}
