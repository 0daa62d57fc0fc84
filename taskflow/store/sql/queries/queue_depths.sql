-- Per queue: tasks that could run now, tasks running, and the next scheduled start.
SELECT queue,
       count(*) FILTER (WHERE status IN ('queued', 'failed') AND scheduled_at <= clock_timestamp()) AS due,
       count(*) FILTER (WHERE status = 'running') AS running,
       min(scheduled_at) FILTER (WHERE status IN ('queued', 'failed') AND scheduled_at > clock_timestamp()) AS next_scheduled_at
FROM taskflow_tasks
WHERE status IN ('queued', 'failed', 'running')
GROUP BY queue
