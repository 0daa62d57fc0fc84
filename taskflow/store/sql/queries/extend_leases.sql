-- Renew leases that are still held; tasks missing from the result were lost or cancelled.
UPDATE taskflow_tasks t
SET lease_expires_at = clock_timestamp() + make_interval(secs => %(lease_s)s)
FROM unnest(%(ids)s::uuid[], %(fences)s::bigint[]) AS h(id, fence)
WHERE t.id = h.id AND t.fence = h.fence AND t.status = 'running'
RETURNING t.id
