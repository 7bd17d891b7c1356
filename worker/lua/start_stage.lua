-- Begin a stage of an entry's work: renew its lease, count the attempt, and return what
-- the stage needs (the entry, and for extraction the fetched page) in the same step.
-- KEYS[1]  entry HASH   KEYS[2]  inflight ZSET   KEYS[3]  page HASH ('' when not wanted)
-- ARGV[1]  entry id   ARGV[2]  now   ARGV[3]  running lease seconds
-- ARGV[4]  max attempts   ARGV[5]  stage name (fetch, extract)
-- Returns  {verdict, detail, entry JSON or false} (start_entry.lua), and when the
-- verdict is 'go' and a page HASH is given: page url, fetched at, html (false if none).
-- include: start_entry
local verdict, detail, entry = start_entry(
  KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])
if verdict ~= 'go' or KEYS[3] == '' then
  return {verdict, detail, entry}
end
local page = redis.call('HMGET', KEYS[3], 'url', 'fetched_at', 'html')
return {verdict, detail, entry, page[1], page[2], page[3]}
