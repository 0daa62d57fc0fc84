-- Engine functions: each records a batch of outcomes and the DAG progression they cause
-- in the caller's transaction, in one round trip.
--
-- They all return rows of the same shape, `taskflow_change`, telling the caller what to do in Redis:
--   kind = 'accepted'  a worker's write was accepted (its fence was current)
--   kind = 'ready'     a task became due: enqueue it (scheduled_at says now or later)
--   kind = 'removed'   a task left the queue (cancelled): remove it from Redis
--   kind = 'dlq'       a task was dead-lettered
--   kind = 'run'       a DAG run changed status (status column)

CREATE TYPE taskflow_change AS (
    kind         text,
    task_id      uuid,
    queue        text,
    priority     integer,
    scheduled_at timestamptz,
    dag_run_id   uuid,
    status       text
);

-- Called after the steps p_ids reached a terminal status in this transaction.
-- Completed steps release their children; dead-lettered or cancelled steps cancel every
-- descendant (they can no longer run); each run counts down its unfinished steps and
-- finishes when none is left.
CREATE FUNCTION taskflow_steps_finished(p_ids uuid[]) RETURNS SETOF taskflow_change
LANGUAGE plpgsql AS $$
DECLARE
    v_cancelled uuid[];
BEGIN
    -- Children of completed parents: lock them in id order so concurrent batches cannot deadlock.
    RETURN QUERY
    WITH released AS (
        SELECT e.child_id, count(*)::integer AS n
        FROM taskflow_dag_edges e
        JOIN taskflow_tasks p ON p.id = e.parent_id
        WHERE e.parent_id = ANY (p_ids) AND p.status = 'completed'
        GROUP BY e.child_id
    ), locked AS (
        SELECT c.id, r.n FROM taskflow_tasks c JOIN released r ON r.child_id = c.id
        WHERE c.status = 'pending'
        ORDER BY c.id
        FOR UPDATE OF c
    ), updated AS (
        UPDATE taskflow_tasks c
        SET pending_parents = c.pending_parents - l.n,
            status = CASE WHEN c.pending_parents = l.n THEN 'queued' ELSE c.status END,
            scheduled_at = CASE WHEN c.pending_parents = l.n THEN clock_timestamp() ELSE c.scheduled_at END
        FROM locked l
        WHERE c.id = l.id
        RETURNING c.id, c.queue, c.priority, c.scheduled_at, c.dag_run_id, c.status
    )
    SELECT 'ready'::text, u.id, u.queue, u.priority, u.scheduled_at, u.dag_run_id, u.status
    FROM updated u WHERE u.status = 'queued';

    -- Descendants of failed or cancelled steps can never run.
    WITH RECURSIVE below(id) AS (
        SELECT e.child_id
        FROM taskflow_dag_edges e JOIN taskflow_tasks p ON p.id = e.parent_id
        WHERE e.parent_id = ANY (p_ids) AND p.status IN ('dlq', 'cancelled')
        UNION
        SELECT e.child_id FROM taskflow_dag_edges e JOIN below b ON e.parent_id = b.id
    ), cancelled AS (
        UPDATE taskflow_tasks t
        SET status = 'cancelled', finished_at = clock_timestamp(),
            error_message = 'not run: an upstream step failed or was cancelled'
        FROM (SELECT id FROM below ORDER BY id) b
        WHERE t.id = b.id AND t.status = 'pending'
        RETURNING t.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_cancelled FROM cancelled;

    -- Count down each run; the first dead-lettered step fails its run at once.
    RETURN QUERY
    WITH finished AS (
        SELECT t.dag_run_id, count(*)::integer AS n, bool_or(t.status = 'dlq') AS any_dlq,
               min(t.step_id) FILTER (WHERE t.status = 'dlq') AS dlq_step
        FROM taskflow_tasks t
        WHERE t.id = ANY (p_ids || v_cancelled) AND t.dag_run_id IS NOT NULL
        GROUP BY t.dag_run_id
    ), locked AS (
        -- FOR UPDATE waits for concurrent batches and then sees their committed status.
        SELECT r.id, r.status AS old_status
        FROM taskflow_dag_runs r JOIN finished f ON f.dag_run_id = r.id
        ORDER BY r.id FOR UPDATE OF r
    ), updated AS (
        UPDATE taskflow_dag_runs r
        SET unfinished_steps = r.unfinished_steps - f.n,
            status = CASE
                WHEN r.status IN ('completed', 'failed', 'cancelled') THEN r.status
                WHEN f.any_dlq THEN 'failed'
                WHEN r.unfinished_steps = f.n THEN
                    CASE WHEN EXISTS (SELECT 1 FROM taskflow_tasks s
                                      WHERE s.dag_run_id = r.id AND s.status = 'cancelled')
                         THEN 'cancelled' ELSE 'completed' END
                ELSE r.status END,
            error_message = CASE
                WHEN f.any_dlq AND r.error_message IS NULL
                THEN format('step %s was dead-lettered', f.dlq_step)
                ELSE r.error_message END,
            finished_at = CASE WHEN r.unfinished_steps = f.n THEN clock_timestamp() ELSE r.finished_at END
        FROM finished f, locked l
        WHERE r.id = f.dag_run_id AND l.id = r.id
        RETURNING r.id, r.status, l.old_status
    )
    SELECT 'run'::text, NULL::uuid, NULL::text, NULL::integer, NULL::timestamptz, u.id, u.status
    FROM updated u WHERE u.status IS DISTINCT FROM u.old_status;

    RETURN QUERY
    SELECT 'removed'::text, t.id, t.queue, t.priority, t.scheduled_at, t.dag_run_id, t.status
    FROM taskflow_tasks t WHERE t.id = ANY (v_cancelled);
END
$$;

-- Record successful completions. A row whose fence is stale (the lease was lost, or the
-- task was cancelled) is ignored: the caller learns which were accepted.
CREATE FUNCTION taskflow_complete(p_ids uuid[], p_fences bigint[], p_results jsonb[])
RETURNS SETOF taskflow_change LANGUAGE plpgsql AS $$
DECLARE
    v_done uuid[];
BEGIN
    WITH done AS (
        UPDATE taskflow_tasks t
        SET status = 'completed', result = u.result, error_message = NULL,
            lease_expires_at = NULL, finished_at = clock_timestamp()
        FROM (SELECT * FROM unnest(p_ids, p_fences, p_results) AS x(id, fence, result) ORDER BY id) u
        WHERE t.id = u.id AND t.fence = u.fence AND t.status = 'running'
        RETURNING t.id, t.fence
    ), attempt AS (
        UPDATE taskflow_attempts a SET finished_at = clock_timestamp(), outcome = 'completed'
        FROM done d WHERE a.task_id = d.id AND a.fence = d.fence
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_done FROM done;

    RETURN QUERY
    SELECT 'accepted'::text, t.id, t.queue, t.priority, t.scheduled_at, t.dag_run_id, t.status
    FROM taskflow_tasks t WHERE t.id = ANY (v_done);
    RETURN QUERY SELECT * FROM taskflow_steps_finished(v_done);
END
$$;

-- Record failed attempts: retry after an exponential backoff with jitter, or dead-letter
-- when the retries are used up or the error is permanent. p_outcome names why the attempt
-- ended ('failed', 'lease_expired', 'handed_back').
CREATE FUNCTION taskflow_fail(
    p_ids uuid[], p_fences bigint[], p_errors text[], p_permanent boolean[],
    p_outcome text, p_backoff_base double precision, p_backoff_cap double precision
) RETURNS SETOF taskflow_change LANGUAGE plpgsql AS $$
DECLARE
    v_failed taskflow_change[];
BEGIN
    WITH input AS (
        SELECT * FROM unnest(p_ids, p_fences, p_errors, p_permanent) AS x(id, fence, error, permanent) ORDER BY id
    ), failed AS (
        UPDATE taskflow_tasks t
        SET status = CASE WHEN i.permanent OR t.retry_count >= t.max_retries THEN 'dlq' ELSE 'failed' END,
            retry_count = CASE WHEN i.permanent OR t.retry_count >= t.max_retries
                               THEN t.retry_count ELSE t.retry_count + 1 END,
            scheduled_at = CASE WHEN i.permanent OR t.retry_count >= t.max_retries THEN t.scheduled_at
                                ELSE clock_timestamp() + make_interval(secs =>
                                     least(p_backoff_cap, p_backoff_base * power(2, t.retry_count))
                                     * (0.5 + random() / 2)) END,
            finished_at = CASE WHEN i.permanent OR t.retry_count >= t.max_retries
                               THEN clock_timestamp() ELSE NULL END,
            error_message = i.error,
            lease_expires_at = NULL
        FROM input i
        WHERE t.id = i.id AND t.fence = i.fence AND t.status = 'running'
        RETURNING t.id, t.queue, t.priority, t.scheduled_at, t.dag_run_id, t.status, t.fence, i.error
    ), attempt AS (
        UPDATE taskflow_attempts a
        SET finished_at = clock_timestamp(), error = f.error,
            outcome = CASE WHEN f.status = 'dlq' AND p_outcome = 'failed' THEN 'dead_lettered' ELSE p_outcome END
        FROM failed f WHERE a.task_id = f.id AND a.fence = f.fence
    )
    SELECT coalesce(array_agg(ROW('accepted', f.id, f.queue, f.priority, f.scheduled_at, f.dag_run_id, f.status)::taskflow_change), '{}')
    INTO v_failed FROM failed f;

    RETURN QUERY SELECT * FROM unnest(v_failed);
    RETURN QUERY
    SELECT 'ready'::text, f.task_id, f.queue, f.priority, f.scheduled_at, f.dag_run_id, f.status
    FROM unnest(v_failed) f WHERE f.status = 'failed';
    RETURN QUERY
    SELECT 'dlq'::text, f.task_id, f.queue, f.priority, f.scheduled_at, f.dag_run_id, f.status
    FROM unnest(v_failed) f WHERE f.status = 'dlq';
    RETURN QUERY SELECT * FROM taskflow_steps_finished(
        ARRAY(SELECT f.task_id FROM unnest(v_failed) f WHERE f.status = 'dlq'));
END
$$;

-- Cancel tasks that have not finished. A running task's worker loses its fence, so its
-- result is discarded.
CREATE FUNCTION taskflow_cancel_tasks(p_ids uuid[], p_reason text) RETURNS SETOF taskflow_change
LANGUAGE plpgsql AS $$
DECLARE
    v_cancelled uuid[];
BEGIN
    WITH cancelled AS (
        UPDATE taskflow_tasks t
        SET status = 'cancelled', finished_at = clock_timestamp(), lease_expires_at = NULL,
            error_message = p_reason
        FROM (SELECT id FROM unnest(p_ids) AS x(id) ORDER BY id) i
        WHERE t.id = i.id AND t.status IN ('pending', 'queued', 'running', 'failed')
        RETURNING t.id, t.fence
    ), attempt AS (
        UPDATE taskflow_attempts a SET finished_at = clock_timestamp(), outcome = 'cancelled', error = p_reason
        FROM cancelled c WHERE a.task_id = c.id AND a.fence = c.fence AND a.outcome IS NULL
    )
    SELECT coalesce(array_agg(id), '{}') INTO v_cancelled FROM cancelled;

    RETURN QUERY
    SELECT 'removed'::text, t.id, t.queue, t.priority, t.scheduled_at, t.dag_run_id, t.status
    FROM taskflow_tasks t WHERE t.id = ANY (v_cancelled);
    RETURN QUERY SELECT * FROM taskflow_steps_finished(v_cancelled);
END
$$;
