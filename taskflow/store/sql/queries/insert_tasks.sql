-- Insert standalone tasks, one row per array element. A task whose idempotency key is
-- already taken is not inserted (the caller looks the existing one up).
INSERT INTO taskflow_tasks (id, type, queue, payload, status, priority, scheduled_at, max_retries, idempotency_key)
SELECT x.id, x.type, x.queue, x.payload, 'queued', x.priority, x.scheduled_at, x.max_retries, x.idempotency_key
FROM unnest(%(ids)s::uuid[], %(types)s::text[], %(queues)s::text[], %(payloads)s::jsonb[],
            %(priorities)s::integer[], %(scheduled_ats)s::timestamptz[], %(max_retries)s::integer[],
            %(idempotency_keys)s::text[])
     AS x(id, type, queue, payload, priority, scheduled_at, max_retries, idempotency_key)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
