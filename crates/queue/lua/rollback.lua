-- rollback.lua: undo decisions that PostgreSQL refused, so Redis agrees with the record.
--
-- KEYS[1] meta   KEYS[2] holders
-- ARGV[1] status key prefix ("...{tag}:r:")
-- ARGV[2..] 5-tuples: request_id, user_id, code it was issued, new status ("d" or "s"),
--           holder request id in PostgreSQL ("" when the user holds nothing there)
--
-- Returns the number of decisions undone.
--
-- A refusal means Redis and PostgreSQL disagree (e.g. Redis lost data the record has). The record
-- wins: "d" — the user already holds a coupon in PostgreSQL that Redis did not know of: the
-- request becomes a duplicate and the holder entry names the recorded holder; the counts stay, as
-- the coupon Redis took back is the one the recorded holder has. "s" — PostgreSQL has no stock
-- left for it: the coupon is un-issued and Redis's stock set to zero, so it stops issuing what
-- cannot be recorded.
-- Idempotent: a decision is undone only while its status record still says issued with that code,
-- so a worker that crashed after committing the refusal and runs this again changes nothing.

local meta, holders, prefix = KEYS[1], KEYS[2], ARGV[1]
local undone = 0
for i = 2, #ARGV, 5 do
  local rid, user, code, new_status, holder = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local key = prefix .. rid
  local record = redis.call('GET', key)
  local expected_head = 'i\t'
  if record and string.sub(record, 1, 2) == expected_head and string.find(record, '\t' .. code .. '\t', 1, true) then
    -- record = "i\tcampaign\tuser\tcode\tms": keep everything but the status and the code.
    local rest = string.sub(record, 3)
    local campaign, _user, _code, ms = string.match(rest, '^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
    redis.call('SET', key, new_status .. '\t' .. campaign .. '\t' .. user .. '\t\t' .. ms, 'KEEPTTL')
    if new_status ~= 'd' then
      redis.call('HINCRBY', meta, 'issued', -1)
      redis.call('HSET', meta, 'remaining', 0)
    end
    -- Refusal tallies (only while kept, see warm_finish.lua) follow the status the record holds.
    if redis.call('HEXISTS', meta, 'sold_out') == 1 then
      redis.call('HINCRBY', meta, new_status == 'd' and 'duplicate' or 'sold_out', 1)
    end
    if holder ~= '' then
      redis.call('HSET', holders, user, holder)
    elseif redis.call('HGET', holders, user) == rid then
      redis.call('HDEL', holders, user)
    end
    undone = undone + 1
  end
end
return undone
