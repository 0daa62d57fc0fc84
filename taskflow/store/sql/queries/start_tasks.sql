-- Start tasks a worker claimed in Redis. Only tasks Postgres still calls claimable start;
-- each gets a fresh fence from the sequence, so any write of an earlier holder is refused.
WITH started AS (
    UPDATE taskflow_tasks t
    SET status = 'running', fence = nextval('taskflow_fence_seq'), attempts = t.attempts + 1,
        worker_id = %(worker_id)s,
        lease_expires_at = clock_timestamp() + make_interval(secs => %(lease_s)s),
        started_at = coalesce(t.started_at, clock_timestamp())
    FROM (SELECT id FROM unnest(%(ids)s::uuid[]) AS x(id) ORDER BY id) c
    WHERE t.id = c.id AND t.status IN ('queued', 'failed')
    RETURNING t.id, t.type, t.queue, t.payload, t.fence, t.attempts, t.retry_count, t.max_retries,
              t.dag_run_id, t.step_id, t.priority, t.scheduled_at
), attempt AS (
    INSERT INTO taskflow_attempts (task_id, attempt, fence, worker_id, started_at)
    SELECT s.id, s.attempts, s.fence, %(worker_id)s, clock_timestamp() FROM started s
), run AS (
    UPDATE taskflow_dag_runs r SET status = 'running', started_at = clock_timestamp()
    WHERE r.id IN (SELECT s.dag_run_id FROM started s WHERE s.dag_run_id IS NOT NULL) AND r.status = 'pending'
)
SELECT * FROM started
