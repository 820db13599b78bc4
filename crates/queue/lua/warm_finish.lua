-- warm_finish.lua: publish a rebuilt campaign state and open it for accepting and deciding.
--
-- KEYS[1] meta   KEYS[2] log
-- ARGV[1] warm-up token   ARGV[2] name   ARGV[3] stock   ARGV[4] opens (ms)
-- ARGV[5] closes (ms, "" = never)   ARGV[6] issued (rows in PostgreSQL)   ARGV[7] next coupon seq
-- ARGV[8] code key   ARGV[9] consumer group   ARGV[10] rebuild epoch (the record's, just moved on
-- by this warm-up; decide.lua and accept.lua stamp it on every log entry, and persisting refuses
-- entries of an older one)   ARGV[11] decide mode ("queued" or "instant"; accept.lua decides at
-- once when it reads "instant")   ARGV[12] "1" when the campaign has a waiting room, else ""
-- ARGV[13] admit_per_second   ARGV[14] pass_secs   ARGV[15] prequeue_secs   ARGV[16] pre-queue
-- seed (hex)   ARGV[17] "1" when admission is paused, else "0"   ARGV[18] proof-of-work bits a
-- join must show (ARGV[13..18] "" without one)   ARGV[19] stock shards (1 ..= 64; shown by the
-- campaign view, not yet used to decide)
--
-- Returns 1 when published, 0 when the token no longer owns the warm-up.
--
-- Atomic with the ownership check. `remaining` is derived from PostgreSQL's stock (which operators
-- may have raised, see add_stock.lua) and count of issued rows, never from a stale counter, so
-- guarantee 1 holds after Redis lost its data, and an added stock that reached PostgreSQL but not
-- Redis (a crash in between) is applied by the rebuild. The log's consumer group is created here
-- (MKSTREAM), so persisters can always read it. The waiting room's settings are the record's
-- (an operator's rate or pause reaches PostgreSQL first); its queue (waiting_room.lua's keys) is
-- not touched: it lives only in Redis and survives a rebuild of a state Redis still holds.

local meta, log, token = KEYS[1], KEYS[2], ARGV[1]
if redis.call('HGET', meta, 'warming') ~= token then return 0 end
local stock, issued = tonumber(ARGV[3]), tonumber(ARGV[6])
local remaining = stock - issued
if remaining < 0 then remaining = 0 end
-- The sequence never goes backwards: a rebuild of a state Redis still holds (warm_invalidate.lua)
-- keeps a `seq` that is already past the record's.
local seq = tonumber(ARGV[7])
local kept = tonumber(redis.call('HGET', meta, 'seq') or '0')
if kept > seq then seq = kept end
redis.call('HSET', meta, 'name', ARGV[2], 'stock', stock, 'opens', ARGV[4], 'closes', ARGV[5],
  'issued', issued, 'remaining', remaining, 'seq', seq, 'key', ARGV[8], 'epoch', ARGV[10],
  'decide', ARGV[11], 'shards', ARGV[19], 'ready', '1')
redis.call('HDEL', meta, 'warming', 'warm_until', 'rebuild')
if ARGV[12] == '1' then
  redis.call('HSET', meta, 'waiting_room', '1', 'wr_rate', ARGV[13], 'wr_pass', ARGV[14],
    'wr_prequeue', ARGV[15], 'wr_seed', ARGV[16], 'wr_paused', ARGV[17], 'wr_pow', ARGV[18])
else
  redis.call('HDEL', meta, 'waiting_room', 'wr_rate', 'wr_pass', 'wr_prequeue', 'wr_seed',
    'wr_paused', 'wr_pow')
end
-- Refusal tallies (sold_out, duplicate) for the operator's stats. They are exact only when the
-- record holds no decision yet: with no issued row there can be no sold_out or duplicate row
-- either (both need a coupon taken first), so a campaign built from an empty record starts them
-- at zero and accept.lua / decide.lua / rollback.lua keep them. A campaign rebuilt from a record
-- that has decisions drops them; stats then count PostgreSQL's rows instead.
if issued == 0 then
  redis.call('HSET', meta, 'sold_out', 0, 'duplicate', 0)
else
  redis.call('HDEL', meta, 'sold_out', 'duplicate')
end
local created = redis.pcall('XGROUP', 'CREATE', log, ARGV[9], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP', 1, true) then
  return created
end
return 1
