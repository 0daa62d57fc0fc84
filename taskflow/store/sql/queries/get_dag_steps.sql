SELECT step_id, id AS task_id, type, queue, status, attempts, retry_count, error_message, started_at, finished_at
FROM taskflow_tasks WHERE dag_run_id = %(id)s
ORDER BY id
