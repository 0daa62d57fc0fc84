SELECT * FROM taskflow_dag_runs WHERE id = %(id)s
