-- rollback.lua: undo decisions that PostgreSQL refused, so Redis agrees with the record.
--
-- KEYS[1] meta   KEYS[2] holders
-- ARGV[1] status key prefix ("...{tag}:r:")
-- ARGV[2..] 5-tuples: request_id, user_id, coupon seq it was issued, new status ("d" or "s"),
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
-- Idempotent: a decision is undone only while its status record still says issued with that
-- coupon, so a worker that crashed after committing the refusal and runs this again changes
-- nothing. The record names the coupon by its sequence number (decide.lua, accept.lua); the field
-- is compared whole, never searched for: a campaign or user id may itself look like a number.

local meta, holders, prefix = KEYS[1], KEYS[2], ARGV[1]
local undone = 0
for i = 2, #ARGV, 5 do
  local rid, user, seq = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local new_status, holder = ARGV[i + 3], ARGV[i + 4]
  local key = prefix .. rid
  local record = redis.call('GET', key)
  -- record = "i\tcampaign\tuser\tcoupon\tms": keep everything but the status and the coupon.
  local campaign, _user, coupon, ms = nil, nil, nil, nil
  if record then
    campaign, _user, coupon, ms = string.match(record, '^i\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$')
  end
  if coupon and seq ~= '' and coupon == seq then
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
