SELECT id FROM taskflow_dag_runs WHERE idempotency_key = %(key)s
