-- add_stock.lua: raise a campaign's stock in Redis to what PostgreSQL now records (operator action).
--
-- KEYS[1] meta
-- ARGV[1] target stock: the campaign's stock in PostgreSQL after the operator's addition
--
-- Returns {"M"} not warm here (warm it from PostgreSQL, which already holds the new stock) |
--   {"C"} closed | {"S"} sold out | {"OK", stock, remaining} as Redis now holds them.
--
-- Called after PostgreSQL committed `stock = stock + N`, so Redis's stock never exceeds the
-- record's and the persister's room check never refuses what Redis issues (guarantee 1 holds in
-- both). Raising *to* the record's value rather than adding N makes the call idempotent and
-- order-independent: two operators' additions that reach Redis in either order, a retry, or a
-- later addition carrying one whose Redis step was lost to a crash, all converge on the record.
-- `remaining` grows by exactly what `stock` grows by, in the same atomic step as decide.lua's
-- decrements, so a racing decide never sees one without the other.
--
-- Refused once the campaign is sold out (remaining 0) or closed: requests were already refused
-- `sold_out` (or will be, from the queue) and stock appearing afterwards would let later requests
-- be issued while earlier ones were refused, breaking first come, first served (guarantee 5).
-- Both states are final for stock, so a refusal here stays a refusal: the caller takes the
-- addition back out of PostgreSQL.

local meta = KEYS[1]
local target = tonumber(ARGV[1])
local state = redis.call('HMGET', meta, 'ready', 'stock', 'remaining', 'closes')
if state[1] ~= '1' then return {'M'} end
local stock, remaining = tonumber(state[2]), tonumber(state[3])
if target <= stock then return {'OK', stock, remaining} end
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
if state[4] and state[4] ~= '' and now >= tonumber(state[4]) then return {'C'} end
if remaining <= 0 then return {'S'} end
remaining = remaining + (target - stock)
redis.call('HSET', meta, 'stock', target, 'remaining', remaining)
return {'OK', target, remaining}
