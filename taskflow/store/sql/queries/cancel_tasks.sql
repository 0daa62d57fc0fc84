SELECT * FROM taskflow_cancel_tasks(%(ids)s::uuid[], %(reason)s)
