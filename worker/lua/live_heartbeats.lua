-- The processes whose heartbeat has not expired; the others leave the heartbeats SET.
-- KEYS[1] heartbeats SET, then each member's heartbeat key  ARGV: the members
-- Returns the live members. Atomic with a beat (SET and SADD in one transaction): a
-- process beating again is either seen alive or, removed here, added back by that beat.
local live = {}
for i, member in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    live[#live + 1] = member
  else
    redis.call('SREM', KEYS[1], member)
  end
end
return live
