-- requeue.lua: hand the requests of superseded log entries back to the campaign's queue, to be
-- decided again by the rebuilt state, and acknowledge those entries.
--
-- KEYS[1] meta   KEYS[2] queue   KEYS[3] log
-- ARGV[1] consumer group   ARGV[2] status key prefix ("...{tag}:r:")   ARGV[3] work channel
-- ARGV[4] campaign id   ARGV[5] the record's rebuild epoch   ARGV[6] number of entry ids E
-- ARGV[7 .. 6+E] entry ids
-- ARGV[7+E ..] triples: request_id, user_id, the status record the superseded decision wrote
--              ("status\tcampaign\tuser\tseq\tms", as decide.lua / accept.lua write it) —
--              in the order the requests were first decided
--
-- Returns {requeued, skipped}, or {-1} when the campaign's current Redis state is itself older
-- than the record's epoch: it was taken out of service here (nothing requeued, nothing
-- acknowledged); the caller rebuilds it (a warm-up) and calls again.
--
-- "Superseded": the entries were decided by a Redis state older than the record's rebuild epoch
-- (Redis lost its data while a worker held them; the record refused them, see
-- crates/store/src/persist.rs). Their requests were accepted (`202`) but hold no decision the
-- record or the rebuilt state knows of. Each goes back to the *head* of the queue, in its
-- original order and with its original id and user, so it keeps its place ahead of everything
-- accepted since, and its status record reads `queued` again until decided.
--
-- Which requests are skipped: a request whose status record is anything but the superseded
-- decision's own record — `queued`, or decided since — was handed back already (a retried or
-- duplicated hand-back: a lost reply, another worker's takeover of the same stale entry), so it
-- is never queued or decided twice. Its own record (same status, sequence and millisecond) is
-- still there when Redis came back *older* rather than empty, from a state the record's epoch has
-- moved past: that state is taken out of service first (`ready` "0"), and its requests are then
-- handed back before the rebuild: `rebuild` "1" makes a warm-up wait until the log is empty, so
-- the rebuilt state decides nothing before every superseded request is back at the head of the
-- queue (first come, first served). The caller then passes every superseded entry of the log in
-- log order (`Queue::superseded_log`), not only its own, so no batch comes back late.
-- The caller passes only requests the record does not hold, so one persisted since is never
-- handed back. Atomic, and the entries are acknowledged in the same step: no moment where they
-- are gone and their requests not queued. The queue's bound is not applied: these requests were
-- accepted already.

local meta, queue, log = KEYS[1], KEYS[2], KEYS[3]
local group, status_prefix, work_channel, campaign = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local record_epoch = tonumber(ARGV[5])
local n = tonumber(ARGV[6])
local first = 7 + n

local state = redis.call('HMGET', meta, 'ready', 'epoch')
-- A state built before epochs existed carries none: nothing to compare, it is used as it is.
if state[1] == '1' and state[2] and tonumber(state[2]) < record_epoch then
  redis.call('HSET', meta, 'ready', '0', 'rebuild', '1')
  return {-1}
end

local requeued, skipped = 0, 0
-- Walk backwards so that LPUSH leaves them at the head in their original order.
for i = #ARGV - 2, first, -3 do
  local rid, user, superseded = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local current = redis.call('GET', status_prefix .. rid)
  if current and current ~= superseded then
    skipped = skipped + 1
  else
    redis.call('SET', status_prefix .. rid, 'q\t' .. campaign .. '\t' .. user .. '\t\t')
    redis.call('LPUSH', queue, rid .. '\t' .. user)
    requeued = requeued + 1
  end
end
-- In chunks: Lua's unpack() takes a few thousand values at most.
for from = 7, 6 + n, 1000 do
  local ids = {}
  for i = from, math.min(from + 999, 6 + n) do ids[#ids + 1] = ARGV[i] end
  redis.call('XACK', log, group, unpack(ids))
  redis.call('XDEL', log, unpack(ids))
end
if requeued > 0 then
  redis.call('PUBLISH', work_channel, campaign)
end
return {requeued, skipped}
