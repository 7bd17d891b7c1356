-- Count feeds by status, a batch of feeds a call.
-- KEYS: feed HASHes (a feed removed meanwhile is not counted)
-- Returns {status, count, status, count, ...}.
local counts = {}
for _, key in ipairs(KEYS) do
  local status = redis.call('HGET', key, 'status')
  if status then
    counts[status] = (counts[status] or 0) + 1
  end
end
local reply = {}
for status, count in pairs(counts) do
  reply[#reply + 1] = status
  reply[#reply + 1] = count
end
return reply
