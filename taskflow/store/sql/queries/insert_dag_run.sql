-- A second submission with the same idempotency key inserts nothing and returns no row.
INSERT INTO taskflow_dag_runs (id, idempotency_key, total_steps, unfinished_steps)
VALUES (%(id)s, %(idempotency_key)s, %(total_steps)s, %(total_steps)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
