COPY taskflow_tasks (id, type, queue, payload, status, priority, scheduled_at, max_retries,
                     dag_run_id, step_id, pending_parents)
FROM STDIN
