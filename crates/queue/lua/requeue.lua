-- requeue.lua: hand the requests of superseded log entries back to the campaign's queue, to be
-- decided again by the rebuilt state, and acknowledge those entries.
--
-- KEYS[1] queue   KEYS[2] log
-- ARGV[1] consumer group   ARGV[2] status key prefix ("...{tag}:r:")   ARGV[3] work channel
-- ARGV[4] campaign id   ARGV[5] number of entry ids E   ARGV[6 .. 5+E] entry ids
-- ARGV[6+E ..] pairs: request_id, user_id — in the order they were first decided
--
-- Returns {requeued, skipped}.
--
-- "Superseded": the entries were decided by a Redis state older than the record's rebuild epoch
-- (Redis lost its data while a worker held them; the record refused them, see
-- crates/store/src/persist.rs). Their requests were accepted (`202`) but hold no decision the
-- record or the rebuilt state knows of. Each goes back to the *head* of the queue, in its
-- original order and with its original id and user, so it keeps its place ahead of everything
-- accepted since the loss, and its status record reads `queued` again until decided.
--
-- Atomic and idempotent: a request that already has a status record is skipped. After the loss
-- a status record of such a request can only come from an earlier run of this script (`queued`,
-- or decided since), so a retried or duplicated hand-back (a lost reply, a takeover of the stale
-- entry by another worker) never queues a request twice nor decides it twice. The caller passes
-- only requests the record does not hold, so one persisted since is never handed back either.
-- The entries are acknowledged in the same step: no moment where they are gone and their
-- requests not queued. The queue's bound is not applied: these requests were accepted already.

local queue, log = KEYS[1], KEYS[2]
local group, status_prefix, work_channel, campaign = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[5])
local first_pair = 6 + n

local requeued, skipped = 0, 0
-- Walk backwards so that LPUSH leaves them at the head in their original order.
for i = #ARGV - 1, first_pair, -2 do
  local rid, user = ARGV[i], ARGV[i + 1]
  if redis.call('EXISTS', status_prefix .. rid) == 1 then
    skipped = skipped + 1
  else
    redis.call('SET', status_prefix .. rid, 'q\t' .. campaign .. '\t' .. user .. '\t\t')
    redis.call('LPUSH', queue, rid .. '\t' .. user)
    requeued = requeued + 1
  end
end
if n > 0 then
  local ids = {}
  for i = 6, 5 + n do ids[#ids + 1] = ARGV[i] end
  redis.call('XACK', log, group, unpack(ids))
  redis.call('XDEL', log, unpack(ids))
end
if requeued > 0 then
  redis.call('PUBLISH', work_channel, campaign)
end
return {requeued, skipped}
