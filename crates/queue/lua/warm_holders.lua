-- warm_holders.lua: load one chunk of coupon holders read from PostgreSQL.
--
-- KEYS[1] meta   KEYS[2] holders
-- ARGV[1] warm-up token   ARGV[2] lease (ms)   ARGV[3..] pairs: user_id, request_id
--
-- Returns 1 when loaded, 0 when the token no longer owns the warm-up (its chunk is dropped).
--
-- Atomic with the ownership check, so a warmer whose lease was taken over cannot write into the
-- new owner's rebuild. Each chunk extends the lease. HSET is idempotent.

local meta, holders, token, lease = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if redis.call('HGET', meta, 'warming') ~= token then return 0 end
for i = 3, #ARGV, 2 do
  redis.call('HSET', holders, ARGV[i], ARGV[i + 1])
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
redis.call('HSET', meta, 'warm_until', now + lease)
return 1
