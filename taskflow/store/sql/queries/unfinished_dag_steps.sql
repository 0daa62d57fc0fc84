SELECT id FROM taskflow_tasks
WHERE dag_run_id = %(id)s AND status IN ('pending', 'queued', 'running', 'failed')
ORDER BY id
