-- A page of tasks, newest first; every filter is optional.
SELECT * FROM taskflow_tasks
WHERE (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(dag_run_id)s::uuid IS NULL OR dag_run_id = %(dag_run_id)s)
  AND (%(before)s::uuid IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s
