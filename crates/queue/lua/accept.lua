-- accept.lua: take a group of issue requests for ONE campaign (group commit from one API process).
--
-- KEYS[1] meta     campaign hash: ready, name, stock, opens, closes, remaining, issued, seq, key,
--                  epoch, decide ("instant" or else queued), waiting_room ("1" when the campaign
--                  has one), and the decision tallies sold_out, duplicate (when exact; see
--                  warm_finish.lua)
-- KEYS[2] queue    list of "request_id\tuser_id", FIFO (RPUSH here, LPOP in decide.lua)
-- KEYS[3] holders  hash user_id -> request_id of users holding a coupon
-- KEYS[4] log      stream of decisions waiting to be persisted (one entry per batch)
-- KEYS[5] dirty    flag: "the log has entries no persister was told about"
-- ARGV[1] status key prefix ("...{tag}:r:")   ARGV[2] idempotency key prefix ("...{tag}:c:<id>:i:")
-- ARGV[3] idempotency TTL (s)   ARGV[4] max queue length   ARGV[5] work channel   ARGV[6] campaign id
-- ARGV[7] max log entries (decided batches not yet persisted)
-- ARGV[8..] quadruples: request_id, user_id, idempotency key ("" = none), admitted ("1" when the
--           API verified an admitted, unexpired waiting-room ticket of this user, else "")
--
-- Returns one array per request, in order:
--   {"Q"} queued | {"I", ms, seq} issued at once (instant campaign), with its coupon sequence
--   number | {"S", ms} sold out at once | {"D", ms} duplicate at once
--   {"R", request_id, record|false} idempotent replay | {"U"} key reused with another user
--   {"M"} campaign unknown here (warm it) | {"E"} scheduled | {"C"} closed
--   {"T"} the campaign has a waiting room and the request carries no admitted ticket
--   {"O"} overloaded: the queue is at its bound, or (for a decision at once) the log is — Redis
--         is the buffer while PostgreSQL is away, and it never grows past these two bounds
--
-- Decided at once, here rather than by a worker (decide.lua), are:
--   - every request of an instant campaign (meta `decide` = "instant") while its queue is empty;
--   - every request of any campaign once its stock is gone.
-- The rule is decide.lua's, request by request in arrival order: the user already holds a coupon
-- -> duplicate; stock left -> issued with the campaign's next coupon sequence number (holders
-- HSET, remaining - 1, issued + 1, seq + 1); otherwise sold_out. Each gets its final status
-- record ("status\tcampaign\tuser\tseq\tms") and a log line in decide.lua's format
-- ("request_id\tuser\tstatus\t\tms\tseq"); the group's lines are one log entry stamped with the
-- state's rebuild epoch `e`, exactly as decide.lua's batches, so persisting, acknowledging,
-- rollback and hand-back treat them alike. Nothing decided here is pushed on the queue. The code
-- itself is minted by the reader from `seq` (see decide.lua, rushline_queue::codes).
--
-- Why deciding here keeps the guarantees: scripts run one at a time, so accept.lua and
-- decide.lua calls of one campaign are totally ordered, and each reads and writes remaining,
-- seq and holders inside that order (guarantees 1-3, as in decide.lua). First come, first
-- served (guarantee 5): an instant campaign decides at once only while its queue is empty, so no
-- earlier request can be waiting undecided; once a request is queued (a hand-back after Redis
-- lost its data, see requeue.lua, or an operator's hand), later ones queue behind it and a worker
-- decides them in order. A sold-out decision never needs that care: stock only grows back by a
-- rollback (an operator cannot add stock once it is sold out, see add_stock.lua). A decision made
-- here is final the moment the script ends: its status record, holders and counts change in the
-- same step as its log line, so there is no moment in which it is answered but not recorded to be
-- persisted (guarantee 4), and a worker that dies holding its log entry leaves it pending to be
-- claimed (crates/worker/src/persist.rs).
--
-- Waiting room (guarantee 7): a campaign whose meta says waiting_room = "1" accepts only requests
-- the API marked admitted. The ticket's signature, user, position and expiry are checked by the
-- API (crates/api/src/waiting_room); this check makes "no ticket, no request" hold here, in the
-- same step that queues, so no API path can forget it and a campaign created with a waiting room
-- can never be entered around it. It comes before the idempotency claim: a replay needs the
-- ticket too.
--
-- Atomic: one script, so the state check, the idempotency claim, the status record and the push
-- (or the decision and its log line) happen together or not at all; a request is never queued
-- without its status, nor twice for one key (racing retries run one after the other here and the
-- second sees the first's claim).
-- Every key shares the campaign's {tag}: status and idempotency keys are built from prefixes that
-- carry the same tag, so the whole script runs in one Redis Cluster slot.
-- Retrying after a lost reply is safe: fresh request ids make a second, independent request, and
-- an idempotency key makes the retry a replay (the claim is set for every request queued or
-- decided here).

local meta, queue, holders, log, dirty = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local status_prefix, idem_prefix = ARGV[1], ARGV[2]
local idem_ttl, max_queue = tonumber(ARGV[3]), tonumber(ARGV[4])
local work_channel, campaign = ARGV[5], ARGV[6]
local max_log = tonumber(ARGV[7])

local state = redis.call('HMGET', meta, 'ready', 'opens', 'closes', 'remaining', 'sold_out', 'epoch',
  'decide', 'issued', 'seq', 'waiting_room')
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
local instant = state[7] == 'instant'
local issued = tonumber(state[8] or '0') or 0
local seq = tonumber(state[9] or '0') or 0
local needs_ticket = state[1] == '1' and state[10] == '1'
local queue_len = redis.call('LLEN', queue)
local queue_was_empty = queue_len == 0
local log_full = nil -- looked up only when a request is decided at once

local out = {}
local pushed = 0
local decided = {}
local n_issued, n_sold_out, n_duplicate = 0, 0, 0
for i = 8, #ARGV, 4 do
  local rid, user, idem = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local claim = nil
  local result = nil
  if needs_ticket and ARGV[i + 3] ~= '1' then
    result = {'T'}
  elseif idem ~= '' then
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
    elseif remaining <= 0 or (instant and queue_len == 0) then
      if log_full == nil then log_full = redis.call('XLEN', log) >= max_log end
      if log_full then
        result = {'O'}
      else
        -- Decide now, by decide.lua's rule (see the header for why this order is safe).
        local status, code_seq = 's', ''
        if redis.call('HEXISTS', holders, user) == 1 then
          status = 'd'
          n_duplicate = n_duplicate + 1
        elseif remaining > 0 then
          status = 'i'
          code_seq = seq
          seq = seq + 1
          remaining = remaining - 1
          issued = issued + 1
          redis.call('HSET', holders, user, rid)
          n_issued = n_issued + 1
        else
          n_sold_out = n_sold_out + 1
        end
        redis.call('SET', status_prefix .. rid, status .. '\t' .. campaign .. '\t' .. user .. '\t' .. code_seq .. '\t' .. now)
        decided[#decided + 1] = rid .. '\t' .. user .. '\t' .. status .. '\t\t' .. now .. '\t' .. code_seq
        if status == 'i' then
          result = {'I', now, code_seq}
        else
          result = {string.upper(status), now}
        end
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
    local kind = result[1]
    if claim and (kind == 'Q' or kind == 'I' or kind == 'S' or kind == 'D') then
      redis.call('SET', claim, rid .. '\t' .. user, 'EX', idem_ttl)
    end
  end
  out[#out + 1] = result
end

if #decided > 0 then
  if n_issued > 0 then
    redis.call('HSET', meta, 'remaining', remaining, 'issued', issued, 'seq', seq)
  end
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
