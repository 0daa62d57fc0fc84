-- claim.lua: take up to ARGV[1] tasks from one queue, atomically.
--
-- KEYS[1]  ready   sorted set: score -priority, member "<scheduled_ms:13>:<task id>:<priority>"
--                  (equal scores sort by member: earliest scheduled_at first, then task id, i.e. FIFO)
-- KEYS[2]  delayed sorted set: score scheduled_ms, same members
-- KEYS[3]  leases  sorted set: score lease deadline in ms, member task id
-- ARGV[1]  most tasks to claim
-- ARGV[2]  lease length in ms
-- ARGV[3]  most delayed tasks to promote in this call
--
-- Steps: move due delayed tasks to ready; pop the best ready tasks; record a lease for each.
-- Returns {now_ms, next_delayed_ms or -1, member, member, ...}. The clock is Redis's own, so
-- workers with skewed clocks agree. Postgres, not this lease, decides who may record a result.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
    local priority = tonumber(string.match(member, ':(-?%d+)$'))
    redis.call('ZADD', KEYS[1], -priority, member)
    redis.call('ZREM', KEYS[2], member)
end

local out = {now, -1}
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[1]))
local deadline = now + tonumber(ARGV[2])
for i = 1, #popped, 2 do
    local member = popped[i]
    redis.call('ZADD', KEYS[3], deadline, string.match(member, '^%d+:([^:]+):'))
    out[#out + 1] = member
end

local next_delayed = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #next_delayed > 0 then
    out[2] = tonumber(next_delayed[2])
end
return out
