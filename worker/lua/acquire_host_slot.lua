-- Take a request slot on one host if its politeness budget allows it now.
-- KEYS[1] slots ZSET (token -> expiry ms)   KEYS[2] next-start STRING (ms)
-- ARGV[1] now ms  ARGV[2] token  ARGV[3] concurrency  ARGV[4] delay ms  ARGV[5] slot ttl ms
-- Returns 0 when the slot is taken, else how many ms to wait before asking again.
-- include: host_slot
return take_host_slot(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]))
