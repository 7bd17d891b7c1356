-- Keep a fetched page for the extract stage, outside the append-only file and replicas.
-- KEYS[1] the page HASH   KEYS[2] handed ZSET (pages waiting for extraction)
-- ARGV[1] entry id   ARGV[2] now   ARGV[3] ttl seconds
-- ARGV[4] page url   ARGV[5] fetched at   ARGV[6] html
-- A page lives for seconds and can be fetched again: writing every page to the AOF cost
-- the server about as much CPU as all our other commands together (bench/throughput.py),
-- and AOF rewrites besides. Not propagated, a page is lost with a restart or a failover
-- like an expired hand-off: the extract stage finds no page and the sweeper has the entry
-- fetched again. The handed entry is not propagated either, so that after a restart no
-- page counts as waiting that is not there. (An AOF rewrite still saves the pages it
-- finds; the DEL and ZREM that end them are propagated as usual.)
redis.set_repl(redis.REPL_NONE)
redis.call('HSET', KEYS[1], 'url', ARGV[4], 'fetched_at', ARGV[5], 'html', ARGV[6])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[2]), ARGV[1])
return 1
