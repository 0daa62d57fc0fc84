-- enqueue.lua: make tasks of one queue claimable, at once or when they fall due.
--
-- KEYS[1]  ready   sorted set (see claim.lua)
-- KEYS[2]  delayed sorted set
-- KEYS[3]  leases  sorted set
-- KEYS[4]  wake    list: idle workers block on it (BLPOP); one element wakes one worker
-- ARGV[1]  mode: 'new'    Postgres just made these tasks claimable: add them, dropping any old lease;
--                'repair' the reconciler saw them claimable in Postgres: add only those Redis does
--                         not hold (not ready, not delayed, no unexpired lease)
-- ARGV[2..] members "<scheduled_ms:13>:<task id>:<priority>"
--
-- Returns the number of members added.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local repair = ARGV[1] == 'repair'
local added, ready_now = 0, 0

for i = 2, #ARGV do
    local member = ARGV[i]
    local scheduled = tonumber(string.match(member, '^(%d+):'))
    local task_id = string.match(member, '^%d+:([^:]+):')
    local priority = tonumber(string.match(member, ':(-?%d+)$'))
    local skip = false
    if repair then
        if redis.call('ZSCORE', KEYS[1], member) or redis.call('ZSCORE', KEYS[2], member) then
            skip = true
        else
            local lease = redis.call('ZSCORE', KEYS[3], task_id)
            skip = lease and tonumber(lease) > now
        end
    end
    if not skip then
        redis.call('ZREM', KEYS[3], task_id)
        if scheduled <= now then
            redis.call('ZADD', KEYS[1], -priority, member)
            ready_now = ready_now + 1
        else
            redis.call('ZADD', KEYS[2], scheduled, member)
        end
        added = added + 1
    end
end

if ready_now > 0 then
    for _ = 1, math.min(ready_now, 64) do
        redis.call('LPUSH', KEYS[4], 1)
    end
    redis.call('LTRIM', KEYS[4], 0, 63)
end
return added
