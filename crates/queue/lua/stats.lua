-- stats.lua: one consistent snapshot of a campaign's pipeline for the operator (read-only).
--
-- KEYS[1] meta   KEYS[2] queue   KEYS[3] log
--
-- Returns {ready, stock, remaining, issued, sold_out, duplicate, queued, log_entries,
--          oldest_log_ms, now_ms}; fields Redis does not hold are false (nil in the reply):
--   sold_out/duplicate are absent when the tallies are not kept (see warm_finish.lua),
--   oldest_log_ms when the log is empty.
--
-- One script so every number is taken at the same instant (no decide call runs in between), and
-- the age of the oldest unpersisted decision is measured against Redis's own clock, the clock its
-- stream ids come from. Reads only: safe to run any time, any number of times.

local meta, queue, log = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('HMGET', meta, 'ready', 'stock', 'remaining', 'issued', 'sold_out', 'duplicate')
local queued = redis.call('LLEN', queue)
local log_entries = 0
local oldest = false
if redis.call('EXISTS', log) == 1 then
  log_entries = redis.call('XLEN', log)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if first[1] then
    oldest = tonumber(string.match(first[1][1], '^(%d+)'))
  end
end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
return {state[1] == '1' and 1 or 0, state[2], state[3], state[4], state[5], state[6],
  queued, log_entries, oldest, now}
