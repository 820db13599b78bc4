-- warm_abandon.lua: give up a warm-up this process owns, so another can start at once.
--
-- KEYS[1] meta
-- ARGV[1] warm-up token
--
-- Returns 1 when the lease was released, 0 when the token no longer owns the warm-up (another
-- process took it over after the lease ran out, or it finished): that owner is left alone.
--
-- Compare-and-delete, atomic: only the owner's own token releases the lease, so a slow failing
-- warmer can never cancel the warm-up of the process that replaced it. `ready` stays "0", so
-- nothing is accepted or decided, and the next warm_begin.lua claims the campaign immediately
-- instead of waiting for the lease (30 s) to expire.

local meta, token = KEYS[1], ARGV[1]
if redis.call('HGET', meta, 'warming') ~= token then return 0 end
redis.call('HDEL', meta, 'warming', 'warm_until')
return 1
