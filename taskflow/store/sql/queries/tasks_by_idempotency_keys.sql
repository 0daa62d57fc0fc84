SELECT idempotency_key, id FROM taskflow_tasks WHERE idempotency_key = ANY (%(keys)s::text[])
