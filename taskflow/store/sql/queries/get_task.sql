SELECT * FROM taskflow_tasks WHERE id = %(id)s
