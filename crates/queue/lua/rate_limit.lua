-- rate_limit.lua: GCRA (generic cell rate algorithm) for a group of limited subjects, or a refund.
--
-- KEYS[1..n]   one key per subject (a (campaign, user) or a client address), all in ONE hash slot;
--              each holds the subject's theoretical arrival time (TAT, µs of Redis's clock),
--              expiring (PX) when the subject's whole quota is back, so idle subjects cost nothing
-- ARGV[1]      quota: requests allowed per period (also the burst)
-- ARGV[2]      period in µs (1 s or 1 min)
-- ARGV[3]      "take" or "refund"
-- ARGV[3+i]    (take) idempotency claim key of subject i's request, "" if it has none; the claim
--              key lives in the subject's slot (per-user limits: the campaign's {tag})
--
-- Returns, for "take", one array per subject, in order, times in µs:
--   {1, remaining, reset}        allowed, and spent: `remaining` more would be allowed right now;
--                                the whole quota is back after `reset`
--   {2, 0, 0}                    the request replays a claimed Idempotency-Key: allowed, not spent
--   {0, retry_after, reset}      denied, nothing spent: one request is allowed after `retry_after`
-- For "refund", an empty array: each subject gets back one request it spent (the request turned
-- out to be a replay or met a campaign not in Redis yet, and is asked again after a warm-up).
--
-- GCRA: each request pushes the TAT one emission interval (period / quota) into the future; a
-- request is allowed while the TAT it would leave is at most one period ahead of now. One stored
-- number per subject, no counters to reset, no burst at a window boundary.
--
-- Atomic: one script reads and writes each TAT, so concurrent API replicas sharing this Redis
-- spend one quota between them (the limit holds across replicas exactly, not per replica).
-- Subjects repeated within the call are handled in order (the second sees the first's TAT).
-- Time is Redis's TIME, the same clock for every replica.
-- Retrying after a lost reply may spend a subject's request twice: the client is at most
-- limited one request early, never let through more than its quota.

local quota, period = tonumber(ARGV[1]), tonumber(ARGV[2])
local emission = period / quota
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

-- An integer in decimal: Lua's tostring turns numbers of 15+ digits into exponent form.
local function decimal(x)
  return string.format('%.0f', x)
end

local out = {}
if ARGV[3] == 'refund' then
  for i = 1, #KEYS do
    local tat = tonumber(redis.call('GET', KEYS[i]))
    if tat then
      tat = tat - emission
      if tat <= now then
        redis.call('DEL', KEYS[i])
      else
        redis.call('SET', KEYS[i], decimal(tat), 'PX', math.ceil((tat - now) / 1000))
      end
    end
  end
  return out
end

for i = 1, #KEYS do
  local claim = ARGV[3 + i]
  if claim and claim ~= '' and redis.call('EXISTS', claim) == 1 then
    out[i] = {2, 0, 0}
  else
    local tat = tonumber(redis.call('GET', KEYS[i])) or now
    if tat < now then tat = now end
    local next_tat = tat + emission
    local allowed_from = next_tat - period
    if now < allowed_from then
      out[i] = {0, math.ceil(allowed_from - now), math.ceil(tat - now)}
    else
      redis.call('SET', KEYS[i], decimal(next_tat), 'PX', math.ceil((next_tat - now) / 1000))
      -- (the epsilon keeps float division from losing a whole request: 7/min is 6.9999… after one)
      out[i] = {1, math.floor((now - allowed_from) / emission + 1e-6), math.ceil(next_tat - now)}
    end
  end
end
return out
