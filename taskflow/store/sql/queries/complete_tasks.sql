SELECT * FROM taskflow_complete(%(ids)s::uuid[], %(fences)s::bigint[], %(results)s::jsonb[])
