-- warm_begin.lua: claim the right to (re)build a campaign's Redis state from PostgreSQL.
--
-- KEYS[1] meta   KEYS[2] holders
-- ARGV[1] warm-up token (random, one per attempt)   ARGV[2] lease (ms) a stalled warm-up keeps it
--
-- Returns 0 when the campaign is already warm, 1 when this token now owns the warm-up,
-- -1 when another warm-up holds a live lease (try again shortly).
--
-- Atomic claim: at most one warmer owns a campaign at a time, and a warmer that died is replaced
-- once its lease runs out. Claiming wipes the holders hash, so a rebuild never mixes holders of
-- an earlier, abandoned attempt. Nothing is decided while `ready` is not "1" (accept.lua and
-- decide.lua both check it), so the rebuild sees PostgreSQL as it stands.

local meta, holders, token, lease = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
local state = redis.call('HMGET', meta, 'ready', 'warming', 'warm_until')
if state[1] == '1' then return 0 end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
if state[2] and tonumber(state[3] or '0') > now then return -1 end
redis.call('DEL', holders)
redis.call('HSET', meta, 'ready', '0', 'warming', token, 'warm_until', now + lease)
return 1
