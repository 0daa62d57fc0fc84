-- A worker shutting down returns tasks it started but could not finish; this is not a failed
-- attempt, so retry_count is unchanged. A stale fence returns nothing.
WITH back AS (
    UPDATE taskflow_tasks t
    SET status = 'queued', lease_expires_at = NULL, scheduled_at = clock_timestamp()
    FROM unnest(%(ids)s::uuid[], %(fences)s::bigint[]) AS h(id, fence)
    WHERE t.id = h.id AND t.fence = h.fence AND t.status = 'running'
    RETURNING t.id, t.queue, t.priority, t.scheduled_at, t.fence
), attempt AS (
    UPDATE taskflow_attempts a
    SET finished_at = clock_timestamp(), outcome = 'handed_back', error = 'the worker shut down before the task finished'
    FROM back b WHERE a.task_id = b.id AND a.fence = b.fence
)
SELECT 'ready'::text AS kind, id AS task_id, queue, priority, scheduled_at, NULL::uuid AS dag_run_id, 'queued'::text AS status
FROM back
