COPY taskflow_dag_edges (dag_run_id, parent_id, child_id) FROM STDIN
