-- close.lua: close a campaign now (operator action), so accept.lua refuses it with "C" (409).
--
-- KEYS[1] meta
-- ARGV[1] closes (ms) as PostgreSQL now records it   ARGV[2] opens (ms) as PostgreSQL records it
--
-- Returns {"M"} when the campaign is not warm here (warm it from PostgreSQL, which already holds
-- the close, then call again), else {"OK", opens_ms, closes_ms} as Redis now holds them.
--
-- Called after PostgreSQL recorded the close, so the record is never less closed than Redis. The
-- window only ever moves earlier: each bound becomes the earlier of what Redis has and what it is
-- given, so a retry, a racing second close or a close replayed after a rebuild changes nothing
-- (idempotent and order-independent). A scheduled campaign closed before it opens gets an empty
-- window (opens = closes), as PostgreSQL's `closes_at >= opens_at` demands.
-- Requests already queued are still decided; only new ones are refused.

local meta = KEYS[1]
local closes, opens = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', meta, 'ready', 'opens', 'closes')
if state[1] ~= '1' then return {'M'} end
if state[3] and state[3] ~= '' and tonumber(state[3]) < closes then closes = tonumber(state[3]) end
if tonumber(state[2]) < opens then opens = tonumber(state[2]) end
if opens > closes then opens = closes end
redis.call('HSET', meta, 'opens', opens, 'closes', closes)
return {'OK', opens, closes}
