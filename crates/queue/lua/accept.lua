-- accept.lua: take a group of issue requests for ONE campaign (group commit from one API process).
--
-- KEYS[1] meta     campaign hash: ready, name, stock, opens, closes, remaining, issued, seq, key,
--                  and the decision tallies sold_out, duplicate (when exact; see warm_finish.lua)
-- KEYS[2] queue    list of "request_id\tuser_id", FIFO (RPUSH here, LPOP in decide.lua)
-- KEYS[3] holders  hash user_id -> request_id of users holding a coupon
-- KEYS[4] log      stream of decisions waiting to be persisted (one entry per batch)
-- KEYS[5] dirty    flag: "the log has entries no persister was told about"
-- ARGV[1] status key prefix ("...{tag}:r:")   ARGV[2] idempotency key prefix ("...{tag}:c:<id>:i:")
-- ARGV[3] idempotency TTL (s)   ARGV[4] max queue length   ARGV[5] work channel   ARGV[6] campaign id
-- ARGV[7] max log entries (decided batches not yet persisted)
-- ARGV[8..] triples: request_id, user_id, idempotency key ("" = none)
--
-- Returns one array per request, in order:
--   {"Q"} queued | {"S", ms} sold out at once | {"D", ms} duplicate at once
--   {"R", request_id, record|false} idempotent replay | {"U"} key reused with another user
--   {"M"} campaign unknown here (warm it) | {"E"} scheduled | {"C"} closed
--   {"O"} overloaded: the queue is at its bound, or (for a decision at once) the log is — Redis
--         is the buffer while PostgreSQL is away, and it never grows past these two bounds
--
-- Atomic: one script, so the state check, the idempotency claim, the status record and the push
-- happen together or not at all; a request is never queued without its status, nor twice for one
-- key (racing retries run one after the other here and the second sees the first's claim).
-- Every key shares the campaign's {tag}: status and idempotency keys are built from prefixes that
-- carry the same tag, so the whole script runs in one Redis Cluster slot.
-- Retrying after a lost reply is safe: fresh request ids make a second, independent request, and
-- an idempotency key makes the retry a replay.

local meta, queue, holders, log, dirty = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local status_prefix, idem_prefix = ARGV[1], ARGV[2]
local idem_ttl, max_queue = tonumber(ARGV[3]), tonumber(ARGV[4])
local work_channel, campaign = ARGV[5], ARGV[6]
local max_log = tonumber(ARGV[7])

local state = redis.call('HMGET', meta, 'ready', 'opens', 'closes', 'remaining', 'sold_out', 'epoch')
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)

-- The campaign-wide verdict, applied to every request that is not an idempotent replay.
local verdict = nil
if state[1] ~= '1' then
  verdict = 'M'
elseif now < tonumber(state[2]) then
  verdict = 'E'
elseif state[3] and state[3] ~= '' and now >= tonumber(state[3]) then
  verdict = 'C'
end
local remaining = tonumber(state[4] or '0') or 0
local queue_len = redis.call('LLEN', queue)
local queue_was_empty = queue_len == 0
local log_full = nil -- looked up only when a request is decided at once

local out = {}
local pushed = 0
local decided = {}
local n_sold_out, n_duplicate = 0, 0
for i = 8, #ARGV, 3 do
  local rid, user, idem = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local claim = nil
  local result = nil
  if idem ~= '' then
    claim = idem_prefix .. idem
    local prior = redis.call('GET', claim)
    if prior then
      local tab = string.find(prior, '\t', 1, true)
      local prior_rid, prior_user = string.sub(prior, 1, tab - 1), string.sub(prior, tab + 1)
      if prior_user ~= user then
        result = {'U'}
      else
        result = {'R', prior_rid, redis.call('GET', status_prefix .. prior_rid)}
      end
    end
  end
  if not result then
    if verdict then
      result = {verdict}
    elseif remaining <= 0 then
      if log_full == nil then log_full = redis.call('XLEN', log) >= max_log end
      if log_full then
        result = {'O'}
      else
        -- Sold out: decide now. Safe for FIFO: stock only grows back by a rollback (an operator
        -- cannot add stock once it is sold out, see add_stock.lua).
        local status = 's'
        if redis.call('HEXISTS', holders, user) == 1 then status = 'd' end
        if status == 'd' then n_duplicate = n_duplicate + 1 else n_sold_out = n_sold_out + 1 end
        redis.call('SET', status_prefix .. rid, status .. '\t' .. campaign .. '\t' .. user .. '\t\t' .. now)
        decided[#decided + 1] = rid .. '\t' .. user .. '\t' .. status .. '\t\t' .. now .. '\t'
        result = {string.upper(status), now}
      end
    elseif queue_len >= max_queue then
      result = {'O'}
    else
      redis.call('SET', status_prefix .. rid, 'q\t' .. campaign .. '\t' .. user .. '\t\t')
      redis.call('RPUSH', queue, rid .. '\t' .. user)
      queue_len = queue_len + 1
      pushed = pushed + 1
      result = {'Q'}
    end
    if claim and (result[1] == 'Q' or result[1] == 'S' or result[1] == 'D') then
      redis.call('SET', claim, rid .. '\t' .. user, 'EX', idem_ttl)
    end
  end
  out[#out + 1] = result
end

if #decided > 0 then
  -- Stamped with the state's rebuild epoch, as decide.lua's entries are.
  if state[6] then
    redis.call('XADD', log, '*', 'd', table.concat(decided, '\n'), 'e', state[6])
  else
    redis.call('XADD', log, '*', 'd', table.concat(decided, '\n'))
  end
  if state[5] then
    redis.call('HINCRBY', meta, 'sold_out', n_sold_out)
    redis.call('HINCRBY', meta, 'duplicate', n_duplicate)
  end
  if redis.call('SET', dirty, '1', 'NX') then
    redis.call('PUBLISH', work_channel, campaign)
  end
end
if pushed > 0 and queue_was_empty then
  redis.call('PUBLISH', work_channel, campaign)
end
return out
