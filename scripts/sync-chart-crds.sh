#!/usr/bin/env bash
# Copy the CRDs from crds/ (the source of truth) into the Helm chart's crds/ directory.
#   scripts/sync-chart-crds.sh          copy
#   scripts/sync-chart-crds.sh --check  exit 1 (and say what to run) if the chart's copy differs
set -euo pipefail
cd "$(dirname "$0")/.."
src=crds
dst=charts/taskflow/crds
status=0
for file in "${src}"/*.yaml; do
    target="${dst}/$(basename "${file}")"
    if [[ "${1:-}" == "--check" ]]; then
        if ! cmp -s "${file}" "${target}"; then
            echo "${target} differs from ${file}: run scripts/sync-chart-crds.sh (or make sync-crds)" >&2
            status=1
        fi
    else
        cp "${file}" "${target}"
    fi
done
for target in "${dst}"/*.yaml; do
    if [[ ! -f "${src}/$(basename "${target}")" ]]; then
        echo "${target} has no source in ${src}/: remove it" >&2
        status=1
    fi
done
exit "${status}"
