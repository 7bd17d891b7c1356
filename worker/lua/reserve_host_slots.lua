-- Take request slots ahead for a group of requests, one slot a request, on hosts that need
-- no delay between request starts: what each host's budget allows now, in one round trip.
-- KEYS[2i-1] slots ZSET and KEYS[2i] next-start STRING of request i's host (hosts repeat)
-- ARGV[1] now ms  ARGV[2] concurrency  ARGV[3] slot ttl ms  ARGV[3+i] request i's token
-- Returns, per request, 1 when its slot is taken, else 0 (its fetch asks for itself).
-- include: host_slot
local now, concurrency, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local taken = {}
for i = 1, #KEYS / 2 do
  local wait = take_host_slot(KEYS[2 * i - 1], KEYS[2 * i], now, ARGV[3 + i], concurrency, 0, ttl)
  taken[i] = wait == 0 and 1 or 0
end
return taken
