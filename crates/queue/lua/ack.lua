-- ack.lua: forget log entries that PostgreSQL now holds, and start their status records' TTL.
--
-- KEYS[1] log (the campaign's decision stream)
-- ARGV[1] consumer group   ARGV[2] status TTL (s)   ARGV[3] status key prefix ("...{tag}:r:")
-- ARGV[4] number of entry ids E   ARGV[5 .. 4+E] entry ids   ARGV[5+E ..] request ids
--
-- Returns the number of entries acknowledged.
--
-- Called only after the PostgreSQL transaction holding these decisions committed, so an entry
-- leaves the log only once it is durable in the record. XACK+XDEL and the EXPIREs run together;
-- a crash before this call leaves the entry pending, to be claimed and re-persisted (the insert
-- is idempotent). Status records live on until then, so a request's status is always readable
-- from Redis or PostgreSQL. Running it twice is harmless.

local log, group, ttl, prefix = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = tonumber(ARGV[4])
local ids = {}
for i = 5, 4 + n do ids[#ids + 1] = ARGV[i] end
local acked = 0
if n > 0 then
  acked = redis.call('XACK', log, group, unpack(ids))
  redis.call('XDEL', log, unpack(ids))
end
for i = 5 + n, #ARGV do
  redis.call('EXPIRE', prefix .. ARGV[i], ttl)
end
return acked
