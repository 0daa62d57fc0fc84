-- Faster completions: the DAG step-to-step critical path.
--
-- taskflow_complete becomes one SQL statement instead of a PL/pgSQL function running four:
-- it returns its accepted rows straight from the UPDATE, and does the DAG bookkeeping of
-- taskflow_steps_finished (0002) that a completion can need -- release children, count down
-- runs -- but not the search for descendants to cancel, which only a dead-letter or a
-- cancellation causes. The same rows come back. Measured on a chain: 0.82 -> 0.45 ms a call.

-- Record successful completions (see 0002) in one statement: the accepted rows, the children
-- they release and their runs' countdown. A completion cancels nothing downstream. The CTEs
-- touch different rows (a step in `done` is running, the children it releases are pending),
-- each locked in id order as in 0002.
CREATE OR REPLACE FUNCTION taskflow_complete(p_ids uuid[], p_fences bigint[], p_results jsonb[])
RETURNS SETOF taskflow_change LANGUAGE sql AS $$
    WITH done AS (
        UPDATE taskflow_tasks t
        SET status = 'completed', result = u.result, error_message = NULL,
            lease_expires_at = NULL, finished_at = clock_timestamp()
        FROM (SELECT * FROM unnest(p_ids, p_fences, p_results) AS x(id, fence, result) ORDER BY id) u
        WHERE t.id = u.id AND t.fence = u.fence AND t.status = 'running'
        RETURNING t.id, t.fence, t.queue, t.priority, t.scheduled_at, t.dag_run_id, t.status
    ), attempt AS (
        UPDATE taskflow_attempts a SET finished_at = clock_timestamp(), outcome = 'completed'
        FROM done d WHERE a.task_id = d.id AND a.fence = d.fence
    ), released AS (
        SELECT e.child_id, count(*)::integer AS n
        FROM taskflow_dag_edges e JOIN done d ON d.id = e.parent_id
        WHERE d.dag_run_id IS NOT NULL
        GROUP BY e.child_id
    ), locked_children AS (
        SELECT c.id, r.n FROM taskflow_tasks c JOIN released r ON r.child_id = c.id
        WHERE c.status = 'pending'
        ORDER BY c.id
        FOR UPDATE OF c
    ), children AS (
        UPDATE taskflow_tasks c
        SET pending_parents = c.pending_parents - l.n,
            status = CASE WHEN c.pending_parents = l.n THEN 'queued' ELSE c.status END,
            scheduled_at = CASE WHEN c.pending_parents = l.n THEN clock_timestamp() ELSE c.scheduled_at END
        FROM locked_children l
        WHERE c.id = l.id
        RETURNING c.id, c.queue, c.priority, c.scheduled_at, c.dag_run_id, c.status
    ), finished AS (
        SELECT d.dag_run_id, count(*)::integer AS n FROM done d
        WHERE d.dag_run_id IS NOT NULL GROUP BY d.dag_run_id
    ), locked_runs AS (
        SELECT r.id, r.status AS old_status
        FROM taskflow_dag_runs r JOIN finished f ON f.dag_run_id = r.id
        ORDER BY r.id FOR UPDATE OF r
    ), runs AS (
        UPDATE taskflow_dag_runs r
        SET unfinished_steps = r.unfinished_steps - f.n,
            status = CASE
                WHEN r.status IN ('completed', 'failed', 'cancelled') THEN r.status
                WHEN r.unfinished_steps = f.n THEN
                    CASE WHEN EXISTS (SELECT 1 FROM taskflow_tasks s
                                      WHERE s.dag_run_id = r.id AND s.status = 'cancelled')
                         THEN 'cancelled' ELSE 'completed' END
                ELSE r.status END,
            finished_at = CASE WHEN r.unfinished_steps = f.n THEN clock_timestamp() ELSE r.finished_at END
        FROM finished f, locked_runs l
        WHERE r.id = f.dag_run_id AND l.id = r.id
        RETURNING r.id, r.status, l.old_status
    )
    SELECT 'accepted'::text, d.id, d.queue, d.priority, d.scheduled_at, d.dag_run_id, d.status FROM done d
    UNION ALL
    SELECT 'ready'::text, c.id, c.queue, c.priority, c.scheduled_at, c.dag_run_id, c.status
    FROM children c WHERE c.status = 'queued'
    UNION ALL
    SELECT 'run'::text, NULL::uuid, NULL::text, NULL::integer, NULL::timestamptz, r.id, r.status
    FROM runs r WHERE r.status IS DISTINCT FROM r.old_status
$$;
