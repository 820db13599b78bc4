-- warm_invalidate.lua: take a campaign's Redis state out of service so the next warm-up rebuilds
-- it from PostgreSQL — when Redis is behind the record, or unconditionally (an operator's repair).
--
-- KEYS[1] meta
-- ARGV[1] highest coupon sequence number PostgreSQL has recorded for the campaign ("" = none),
-- ARGV[2] "force" to invalidate whatever Redis holds, "" to invalidate only when behind
--
-- Returns 1 when the campaign was taken out of service, 0 when it was left as it is (not warm,
-- or its sequence is past every recorded one).
--
-- "Behind": Redis hands out each sequence number once and only forward, and the record holds
-- numbers Redis handed out, so a Redis whose next number `seq` is not past the highest recorded
-- one has lost decisions the record holds (it came back older: a host crash, a failover to a
-- lagging replica, a restored snapshot). Deciding on from it would reuse numbers and miss holders.
-- Atomic with decide.lua and accept.lua (both check `ready`): once this ran, nothing is decided
-- or accepted from the old state; the next call warms the campaign under the lease
-- (warm_begin.lua), whose build waits until the decision log is persisted, reads the record and
-- keeps `seq` from going backwards (warm_finish.lua). Idempotent.

local meta, high, force = KEYS[1], ARGV[1], ARGV[2]
local state = redis.call('HMGET', meta, 'ready', 'seq')
if state[1] ~= '1' then return 0 end
if force ~= 'force' then
  if high == '' then return 0 end
  if tonumber(state[2] or '0') > tonumber(high) then return 0 end
end
-- `rebuild` tells the warm-up that the state (and its code key) is still here, so persisters can
-- drain the decision log and the build waits for them; warm_finish.lua clears it.
redis.call('HSET', meta, 'ready', '0', 'rebuild', '1')
return 1
