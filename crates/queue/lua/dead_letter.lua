-- dead_letter.lua: move ONE decision-log entry a worker can never persist to the campaign's
-- dead-letter stream, and take it out of the log, in one step.
--
-- KEYS[1] log (the campaign's decision stream)   KEYS[2] the campaign's dead-letter stream
-- ARGV[1] consumer group   ARGV[2] log entry id   ARGV[3] reason (a closed set, see
-- rushline_queue::DeadLetterReason)   ARGV[4] error text   ARGV[5] worker (consumer name)
--
-- Returns 1 when the entry was moved, 0 when the log no longer holds it (another worker persisted
-- or dead-lettered it already; it is acknowledged for this group all the same).
--
-- The dead letter carries the entry exactly as the log held it: each of its fields under
-- "raw:<field>" (read here, inside the script, so nothing can change in between), beside the
-- original entry id, reason, error, time (Redis TIME, ms) and worker. Atomic: the append, XACK
-- and XDEL happen together, so an entry is always in exactly one of the two streams — a worker
-- killed before this call leaves it pending in the log (claimed again, failing again, moved
-- then); after it, the log is rid of it. Both keys share the campaign's hash tag (one Cluster
-- slot). Running it twice moves nothing twice. The requests' status records are left as they
-- are, without TTL, so their decision stays readable until a replay persists them.

local log, dead = KEYS[1], KEYS[2]
local group, id, reason, err, worker = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]

local found = redis.call('XRANGE', log, id, id)
if #found == 0 then
  redis.call('XACK', log, group, id)
  return 0
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local fields = {'entry', id, 'reason', reason, 'error', err, 'worker', worker, 'at', now}
local raw = found[1][2]
for i = 1, #raw, 2 do
  fields[#fields + 1] = 'raw:' .. raw[i]
  fields[#fields + 1] = raw[i + 1]
end
redis.call('XADD', dead, '*', unpack(fields))
redis.call('XACK', log, group, id)
redis.call('XDEL', log, id)
return 1
