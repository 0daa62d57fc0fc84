-- Claimable tasks whose status changed in a time window: those the normal path may have
-- failed to put in Redis (a crash between COMMIT and the enqueue).
SELECT id, queue, priority, scheduled_at FROM taskflow_tasks
WHERE status IN ('queued', 'failed') AND updated_at >= %(since)s AND updated_at < %(until)s
ORDER BY updated_at
