-- Running tasks whose worker stopped renewing; SKIP LOCKED lets several reconcilers share the work.
SELECT id, fence FROM taskflow_tasks
WHERE status = 'running' AND lease_expires_at < clock_timestamp()
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED
