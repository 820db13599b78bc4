-- decide.lua: take up to N requests off ONE campaign's queue and decide each, in FIFO order.
--
-- KEYS[1] meta  KEYS[2] queue  KEYS[3] holders  KEYS[4] log  KEYS[5] dirty  (as in accept.lua)
-- ARGV[1] status key prefix   ARGV[2] batch size N   ARGV[3] work channel
-- ARGV[4] decided channel     ARGV[5] campaign id   ARGV[6] max log entries
--
-- Returns {"M"} when the campaign is not warm here; {"F", left_in_queue} when the log already
-- holds max log entries (PostgreSQL is behind: requests wait in the queue, whose own bound
-- makes the API shed with 503 — Redis never grows without limit); else
--   {"OK", decided, issued, sold_out, duplicate, left_in_queue}.
--
-- Decision rule, per request in queue order: the user already holds a coupon -> duplicate;
-- stock left -> issued with the campaign's next coupon sequence number; otherwise sold_out.
-- Writes per request: the status record "status\tcampaign\tuser\tseq\tms" (seq empty unless
-- issued) and the log line "request_id\tuser\tstatus\t\tms\tseq" (code field left empty). The
-- batch's log entry holds the lines in field `d` and the state's rebuild epoch in field `e`.
--
-- Atomic: popping, deciding, writing each final status and appending the batch to the log happen
-- in one script, so no moment exists in which a request has left the queue without a recorded
-- decision — a worker killed at any line before or after this call holds nothing but a copy.
-- Scripts run one at a time, so decisions across all workers follow queue order exactly
-- (guarantee 5) and stock can never go below zero (guarantee 1); the holders hash makes a
-- second coupon for a user impossible (guarantee 2).
--
-- Coupon codes are not computed here: they were most of this script's time (four SHA-1s each),
-- and Redis is the one serial resource. Readers mint them in Rust (rushline_queue::codes,
-- CouponCode::mint) from the campaign's secret `key` in the meta hash and the sequence number
-- recorded here: a 4-round Feistel network over 40 bits, a permutation, so distinct sequence
-- numbers give distinct codes (guarantee 3), and without the key a code reveals nothing about the
-- others. Uniqueness rests only on each number being handed out once, which stays here, atomic:
-- `seq` only ever grows (a rollback never reuses one; a rebuild continues past every number that
-- may have been handed out, see CampaignSnapshot::next_seq).

local meta, queue, holders, log, dirty = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local status_prefix, batch = ARGV[1], tonumber(ARGV[2])
local work_channel, decided_channel, campaign = ARGV[3], ARGV[4], ARGV[5]
local max_log = tonumber(ARGV[6])

local state = redis.call('HMGET', meta, 'ready', 'remaining', 'issued', 'seq', 'sold_out', 'epoch')
if state[1] ~= '1' then return {'M'} end
if redis.call('XLEN', log) >= max_log then return {'F', redis.call('LLEN', queue)} end
local remaining, issued, seq = tonumber(state[2]), tonumber(state[3]), tonumber(state[4])

local items = redis.call('LPOP', queue, batch)
if not items then return {'OK', 0, 0, 0, 0, 0} end

local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local lines, ids = {}, {}
local n_issued, n_sold_out, n_duplicate = 0, 0, 0
for i = 1, #items do
  local item = items[i]
  local tab = string.find(item, '\t', 1, true)
  local rid, user = string.sub(item, 1, tab - 1), string.sub(item, tab + 1)
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
  lines[i] = rid .. '\t' .. user .. '\t' .. status .. '\t\t' .. now .. '\t' .. code_seq
  ids[i] = rid
end

redis.call('HSET', meta, 'remaining', remaining, 'issued', issued, 'seq', seq)
-- The refusal tallies are kept only while exact (present since the campaign was built from an
-- empty record; see warm_finish.lua); otherwise stats read them from PostgreSQL.
if state[5] then
  redis.call('HINCRBY', meta, 'sold_out', n_sold_out)
  redis.call('HINCRBY', meta, 'duplicate', n_duplicate)
end
-- The rebuild epoch of the state that decided (absent in a state built before epochs existed):
-- persisting refuses the entry if a rebuild has read the record since (warm_finish.lua).
if state[6] then
  redis.call('XADD', log, '*', 'd', table.concat(lines, '\n'), 'e', state[6])
else
  redis.call('XADD', log, '*', 'd', table.concat(lines, '\n'))
end
if redis.call('SET', dirty, '1', 'NX') then
  redis.call('PUBLISH', work_channel, campaign)
end
redis.call('PUBLISH', decided_channel, table.concat(ids, ' '))
return {'OK', #items, n_issued, n_sold_out, n_duplicate, redis.call('LLEN', queue)}
