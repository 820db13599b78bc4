-- waiting_room.lua: one campaign's waiting room — join the queue, read a user's place, read the
-- serving counter, or change admission (an operator's rate / pause) — advancing the counter first.
--
-- KEYS[1] meta    campaign hash: ready, opens, closes, remaining, and the waiting room's fields
--                 waiting_room ("1" when it has one), wr_rate (admit_per_second), wr_pass (pass,
--                 s), wr_prequeue (s), wr_seed (hex), wr_paused ("1" paused), copied from the
--                 record by warm_finish.lua; wr_rate / wr_paused also by op "admission" here
-- KEYS[2] room    hash: joined (positions handed out), through (admitted_through), tokens
--                 (milli-positions in the bucket), refill (ms the bucket was last refilled at),
--                 frozen ("1" once the pre-queue is frozen at the opening), trim_through/trim_ms
--                 (the newest admission step trimmed away, see below)
-- KEYS[3] places  hash user -> position, for every position handed out after the opening
-- KEYS[4] pre     zset of pre-queued users, all score 0, member "<sha1hex(seed_hex .. user)>:<user>"
-- KEYS[5] steps   zset of admission steps: score = admitted_through after the step, member
--                 "<through>:<ms>"
-- KEYS[6] flow    list of "<ms>:<through>" samples, newest first, >= 1 s apart, at most 11
-- ARGV[1] op: "join" | "place" | "counter" | "admission"
-- ARGV[2] user id (join, place; "" otherwise)
-- ARGV[3] admission: new admit_per_second ("" = unchanged)
-- ARGV[4] admission: "1" pause, "0" resume, "" unchanged
--
-- Returns {code} or {code, counter..., place...}:
--   code "M" not warm (warm the campaign, retry) | "N" no waiting room | "E" join before
--   opens - prequeue | "C" join after the close or once sold out | "OK"
--   counter (OK): now ms, opens ms, joined, prequeued, admitted_through, admit_per_second,
--     paused 0/1, flow sample ms, flow sample through (the oldest kept: outflow = advance since
--     it / time since it), pass secs
--   place (OK, ops join and place): "P" pre-queued | "N" numbered | "" never joined, position,
--     admitted ms ("" not admitted), expired 0/1, first 0/1 (join: a new place was made)
--
-- The serving counter is a token bucket of capacity admit_per_second refilled at
-- admit_per_second per second from opens_at, advanced lazily by every call of this script (all
-- of them read it) with Redis TIME as the one clock. Each advance admits min(whole tokens,
-- joined - through). So it never decreases, never passes joined, and over any window of T
-- seconds grows by at most (tokens at the start, <= capacity) + (refill, rate * T) =
-- rate * (T + 1). A rate change first advances at the old rate, then clamps the tokens to the
-- new capacity; a pause advances, then stops refilling and admitting (resuming refills from the
-- resume, not from the pause). Tokens are kept in milli-positions: integers, exact in a double.
--
-- Pre-queue: a join in [opens - prequeue_secs, opens) gets no position but a member of `pre`
-- ordered by sha1hex(seed_hex .. user_id), seed_hex the campaign's 32 random bytes in lowercase
-- hex, kept secret until the opening. The first call at or after opens_at freezes `pre` and
-- sets joined = ZCARD(pre): a pre-queued user's position is ZRANK + 1 (O(log N), no bulk step),
-- and later joiners get ZCARD + 1, ... in join order. The order is a uniformly random
-- permutation (SHA-1 of a secret key and distinct ids), independent of join times, so hammering
-- the first millisecond gains nothing; and it is reproducible for an audit: given the seed
-- (revealed after the opening) anyone recomputes every user's hash and sorts.
--
-- Admission times: each advance that admits records a step (through, ms); admitted_at of a
-- position = ms of the first step whose through reaches it (ZRANGE BYSCORE, O(log N)). Steps
-- less than max(10 ms, pass / 10000) after the previous one merge into it (keeping its time),
-- so admitted_at is early by less than that (10 ms for passes up to 100 s, 60 ms at the default
-- 600 s) and at most ~10,000 steps per pass are kept; steps older than the pass (every position
-- they admitted has expired) are trimmed, the newest trimmed one remembered in trim_through /
-- trim_ms (positions up to it count as admitted at trim_ms: expired).
--
-- One position per user at a time: a join finds the user's place (places, else pre) and keeps
-- it unless it expired (the pass ends `pass` after the admission's whole second, as the ticket's
-- `exp` says); an expired user gets joined + 1 (HINCRBY),
-- at the back. Positions are dense 1..joined and unique: only this script hands them out, one
-- call at a time per campaign.
--
-- Atomic: one script per call, so the counter, the pre-queue freeze and the handing out of
-- positions are totally ordered per campaign, for every API replica. Retrying after a lost reply
-- is safe: a join that was applied finds the user's place (first = 0), and the counter only
-- depends on Redis time. Every key shares the campaign's {tag}: one Cluster slot.

local meta, room, places, pre, steps, flow = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op, user = ARGV[1], ARGV[2]

local m = redis.call('HMGET', meta, 'ready', 'opens', 'closes', 'remaining', 'waiting_room',
  'wr_rate', 'wr_pass', 'wr_prequeue', 'wr_seed', 'wr_paused')
if m[1] ~= '1' then return {'M'} end
if m[5] ~= '1' then return {'N'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local opens = tonumber(m[2])
local rate, pass_ms = tonumber(m[6]), tonumber(m[7]) * 1000
local seed, paused = m[9], m[10] == '1'
local step_gap = math.max(10, math.floor(pass_ms / 10000))
-- When a pass admitted at `at` (ms) ends: the admission's whole second plus the pass, exactly the
-- ticket's `exp` (unix seconds, rounded down; crates/api/src/tickets/claims.rs), so this script,
-- rushline's ticket checks and any other verifier of `exp` agree on the instant a pass expires.
local function pass_end(at)
  return math.floor(at / 1000) * 1000 + pass_ms
end

if op == 'join' then
  if m[3] and m[3] ~= '' and now >= tonumber(m[3]) then return {'C'} end
  if tonumber(m[4] or '0') <= 0 then return {'C'} end
  if now < opens - tonumber(m[8]) * 1000 then return {'E'} end
end

local r = redis.call('HMGET', room, 'joined', 'through', 'tokens', 'refill', 'frozen',
  'trim_through', 'trim_ms')
local joined, through = tonumber(r[1] or '0'), tonumber(r[2] or '0')
local tokens, refill = tonumber(r[3] or '0'), tonumber(r[4] or '0')
local frozen = r[5] == '1'
local trim_through, trim_ms = tonumber(r[6] or '0'), tonumber(r[7] or '0')

-- Records that positions up to `through` were admitted now (see "Admission times").
local function record_step()
  local last = redis.call('ZRANGE', steps, -1, -1)[1]
  local ms = now
  if last then
    local last_ms = tonumber(string.match(last, ':(%d+)$'))
    if now - last_ms < step_gap then
      ms = last_ms
      redis.call('ZREM', steps, last)
    end
  end
  redis.call('ZADD', steps, through, through .. ':' .. ms)
  -- Trim steps older than the pass: every position they admitted has expired.
  for _ = 1, 64 do
    local oldest = redis.call('ZRANGE', steps, 0, 0)[1]
    if not oldest then break end
    local o_through, o_ms = string.match(oldest, '^(%d+):(%d+)$')
    if tonumber(o_ms) + pass_ms + step_gap > now or oldest == through .. ':' .. ms then break end
    redis.call('ZREM', steps, oldest)
    trim_through, trim_ms = tonumber(o_through), tonumber(o_ms)
  end
end

-- Admits what the bucket allows (after refilling it up to now, unless paused).
local function admit()
  if not frozen or paused then return end
  local cap = rate * 1000
  if now > refill then
    tokens = math.min(cap, tokens + rate * (now - refill))
    refill = now
  end
  local n = math.min(math.floor(tokens / 1000), joined - through)
  if n > 0 then
    through = through + n
    tokens = tokens - n * 1000
    record_step()
  end
end

local function advance()
  if not frozen then
    if now < opens then return end
    -- The opening: freeze the pre-queue; it holds positions 1..ZCARD.
    frozen = true
    joined = redis.call('ZCARD', pre)
    through, tokens, refill = 0, 0, opens
  end
  if paused then refill = now end
  admit()
  local head = redis.call('LINDEX', flow, 0)
  if not head or tonumber(string.match(head, '^(%d+):')) <= now - 1000 then
    redis.call('LPUSH', flow, now .. ':' .. through)
    redis.call('LTRIM', flow, 0, 10)
  end
end

local function save()
  if frozen then
    redis.call('HSET', room, 'joined', joined, 'through', through, 'tokens', tokens,
      'refill', refill, 'frozen', '1', 'trim_through', trim_through, 'trim_ms', trim_ms)
  end
end

local function pre_member(u)
  return redis.sha1hex(seed .. u) .. ':' .. u
end

-- When `position` was admitted: ms, or nil while it waits.
local function admitted_ms(position)
  if position > through then return nil end
  if position <= trim_through then return trim_ms end
  local step = redis.call('ZRANGE', steps, position, '+inf', 'BYSCORE', 'LIMIT', 0, 1)[1]
  if not step then return trim_ms end
  return tonumber(string.match(step, ':(%d+)$'))
end

-- The user's place: kind, position.
local function find(u)
  local position = redis.call('HGET', places, u)
  if position then return 'N', tonumber(position) end
  local member = pre_member(u)
  if frozen then
    local rank = redis.call('ZRANK', pre, member)
    if rank then return 'N', rank + 1 end
  elseif redis.call('ZSCORE', pre, member) then
    return 'P', 0
  end
  return '', 0
end

advance()

local kind, position, first = '', 0, 0
if op == 'admission' then
  if ARGV[3] ~= '' then
    rate = tonumber(ARGV[3])
    tokens = math.min(tokens, rate * 1000)
    redis.call('HSET', meta, 'wr_rate', rate)
  end
  if ARGV[4] ~= '' then
    paused = ARGV[4] == '1'
    refill = now
    redis.call('HSET', meta, 'wr_paused', ARGV[4])
  end
elseif op == 'join' or op == 'place' then
  kind, position = find(user)
  if op == 'join' then
    local expired = false
    if kind == 'N' then
      local at = admitted_ms(position)
      expired = at ~= nil and pass_end(at) <= now
    end
    if kind == '' or expired then
      first = 1
      if frozen then
        joined = joined + 1
        position = joined
        kind = 'N'
        redis.call('HSET', places, user, position)
        -- An idle line admits the newcomer at once, from the tokens already in the bucket.
        admit()
      else
        redis.call('ZADD', pre, 0, pre_member(user))
        kind = 'P'
      end
    end
  end
end
save()

local prequeued = 0
if not frozen then prequeued = redis.call('ZCARD', pre) end
local sample = redis.call('LINDEX', flow, -1)
local sample_ms, sample_through = now, through
if sample then
  local a, b = string.match(sample, '^(%d+):(%d+)$')
  sample_ms, sample_through = tonumber(a), tonumber(b)
end
local at, expired = '', 0
if kind == 'N' then
  local ms = admitted_ms(position)
  if ms then
    at = ms
    if pass_end(ms) <= now then expired = 1 end
  end
end
local paused_flag = 0
if paused then paused_flag = 1 end
return {'OK', now, opens, joined, prequeued, through, rate, paused_flag, sample_ms, sample_through,
  pass_ms / 1000, kind, position, at, expired, first}
