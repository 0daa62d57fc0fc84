-- Mark a run cancelled (a failed run keeps its status); the caller then cancels its unfinished steps.
UPDATE taskflow_dag_runs SET status = 'cancelled', finished_at = clock_timestamp()
WHERE id = %(id)s AND status IN ('pending', 'running')
RETURNING id
