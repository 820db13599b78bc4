-- replay_dead_letter.lua: put ONE dead letter back into its campaign's decision log, as it was,
-- so a (fixed) worker persists it; in one step.
--
-- KEYS[1] the campaign's dead-letter stream   KEYS[2] log   KEYS[3] dirty (as in decide.lua)
-- ARGV[1] dead letter id   ARGV[2] work channel   ARGV[3] campaign id
--
-- Returns the new log entry's id, or false when no such dead letter exists (replayed already,
-- or never there).
--
-- The "raw:<field>" fields dead_letter.lua kept become the new entry's fields, so the log gets
-- back exactly the content it once held (under a new id: a stream only appends). Atomic: the
-- append and the XDEL happen together, so the entry is in exactly one stream at every moment
-- and a retry replays nothing twice. Persisting a replayed entry whose requests PostgreSQL
-- already holds inserts nothing (primary key on request id). Like decide.lua, it raises the
-- log flag and announces the campaign on the work channel, so a worker picks it up at once.

local dead, log, dirty = KEYS[1], KEYS[2], KEYS[3]
local id, work_channel, campaign = ARGV[1], ARGV[2], ARGV[3]

local found = redis.call('XRANGE', dead, id, id)
if #found == 0 then return false end
local fields = {}
local stored = found[1][2]
for i = 1, #stored, 2 do
  if string.sub(stored[i], 1, 4) == 'raw:' then
    fields[#fields + 1] = string.sub(stored[i], 5)
    fields[#fields + 1] = stored[i + 1]
  end
end
-- An entry with no fields at all cannot be appended; keep one marker field (read as unparsable).
if #fields == 0 then fields = {'raw', ''} end
local new_id = redis.call('XADD', log, '*', unpack(fields))
redis.call('XDEL', dead, id)
if redis.call('SET', dirty, '1', 'NX') then
  redis.call('PUBLISH', work_channel, campaign)
end
return new_id
