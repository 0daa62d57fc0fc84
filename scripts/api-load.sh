#!/usr/bin/env bash
# Start `taskflow dev` (embedded PostgreSQL + Redis, the API, N workers) in a fresh data dir,
# run bench/api_load.py against its REST API, then stop it. Usage: scripts/api-load.sh [api_load args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
data_dir=$(mktemp -d "${TMPDIR:-/tmp}/taskflow-load.XXXXXX")
port=${TASKFLOW_LOAD_PORT:-18080}
workers=${TASKFLOW_LOAD_WORKERS:-2}

.venv/bin/taskflow --log-level warning dev --workers "$workers" --port "$port" --data-dir "$data_dir" &
dev_pid=$!
cleanup() { kill -INT "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; rm -rf "$data_dir"; }
trap cleanup EXIT

for _ in $(seq 600); do
    [[ -f "$data_dir/dev.env" ]] && break
    kill -0 "$dev_pid" 2>/dev/null || { echo "api-load: taskflow dev exited; see its output above" >&2; exit 1; }
    sleep 0.1
done
[[ -f "$data_dir/dev.env" ]] || { echo "api-load: taskflow dev did not come up within 60s" >&2; exit 1; }
# shellcheck disable=SC1091
source "$data_dir/dev.env"
echo "api-load: taskflow dev with $workers workers at $TASKFLOW_API_URL"
"$PY" -m bench.api_load "$@"
