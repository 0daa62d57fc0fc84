-- Give a dead-lettered standalone task a fresh set of retries.
UPDATE taskflow_tasks
SET status = 'queued', retry_count = 0, scheduled_at = clock_timestamp(), finished_at = NULL
WHERE id = %(id)s AND status = 'dlq' AND dag_run_id IS NULL
RETURNING id, queue, priority, scheduled_at
