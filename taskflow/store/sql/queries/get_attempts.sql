SELECT task_id, attempt, worker_id, fence, started_at, finished_at, outcome, error
FROM taskflow_attempts WHERE task_id = ANY (%(ids)s::uuid[])
ORDER BY task_id, attempt
