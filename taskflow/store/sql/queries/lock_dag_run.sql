SELECT id, status, unfinished_steps FROM taskflow_dag_runs WHERE id = %(id)s FOR UPDATE
