SELECT * FROM taskflow_fail(%(ids)s::uuid[], %(fences)s::bigint[], %(errors)s::text[], %(permanent)s::boolean[],
                            %(outcome)s, %(backoff_base)s, %(backoff_cap)s)
