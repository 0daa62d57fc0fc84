-- Every claimable task, a page at a time in id order: the reconciler's full resync.
SELECT id, queue, priority, scheduled_at FROM taskflow_tasks
WHERE status IN ('queued', 'failed') AND id > %(after)s
ORDER BY id
LIMIT %(limit)s
