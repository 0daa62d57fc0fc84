#!/usr/bin/env bash
# shellcheck disable=SC2317  # the build_* functions are called through timed()
# Build (once) and cache real kube-apiserver, etcd and helm binaries for the test suite.
#
# Everything is compiled from the Go module proxy with the machine's Go toolchain; nothing
# prebuilt is downloaded. The result is cached OUTSIDE the repository:
#
#   ${TASKFLOW_KUBE_CACHE:-$HOME/.cache/taskflow/kube}/<k8s-version>/
#       kube-apiserver  etcd  helm  .complete
#
# `.complete` is written last and holds the pinned versions; when it exists (with the same pins)
# the script only prints the directory. Builds happen in a temporary directory inside the cache
# root and are renamed into place; concurrent invocations serialise on `flock <cache-root>/.lock`.
#
# Output: progress and timings on stderr; the absolute cache directory on the LAST line of stdout.
# Exit codes: 0 ok, 3 no usable Go toolchain (only checked when a build is needed), other = failure.
#
# Overrides: TASKFLOW_KUBE_VERSION, TASKFLOW_ETCD_VERSION, TASKFLOW_HELM_VERSION, TASKFLOW_KUBE_CACHE.
# GOPATH / GOMODCACHE / GOCACHE are left at their defaults (outside the repo) so rebuilds reuse them.
set -euo pipefail

# Newest v1.34.x/v1.35.x served by the module proxy that builds with Go 1.26.
KUBE_VERSION="${TASKFLOW_KUBE_VERSION:-v1.35.4}"
# Newest etcd 3.6.x (Kubernetes 1.35 ships with etcd 3.6).
ETCD_VERSION="${TASKFLOW_ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${TASKFLOW_HELM_VERSION:-v3.22.0}"
# Oldest Go that can build all three (etcd v3.6.16's and helm v3.22.0's go.mod say `go 1.26.0`).
MIN_GO_MINOR=26

log() { printf '[kube-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

no_go() {
    cat >&2 <<EOF
[kube-binaries] ERROR: $1
  scripts/kube-binaries.sh compiles kube-apiserver ${KUBE_VERSION}, etcd ${ETCD_VERSION} and helm ${HELM_VERSION}
  from the Go module proxy and needs Go >= 1.${MIN_GO_MINOR} on PATH. To get it:
    - install a Go >= 1.${MIN_GO_MINOR} release from https://go.dev/doc/install (e.g. into /usr/local/go)
      and add /usr/local/go/bin to PATH; or
    - with any Go >= 1.21 already installed, run with GOTOOLCHAIN=go1.${MIN_GO_MINOR}.0+auto so that
      the go command fetches a newer toolchain itself.
EOF
    exit 3
}

# --- versions and cache layout ----------------------------------------------------------------
setup() {
    [[ "${KUBE_VERSION}" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] \
        || die "TASKFLOW_KUBE_VERSION must look like v1.MINOR.PATCH, got '${KUBE_VERSION}'"
    KUBE_MINOR="${BASH_REMATCH[1]}"
    KUBE_PATCH="${BASH_REMATCH[2]}"
    # The staging modules (k8s.io/api, k8s.io/apiserver, ...) are tagged v0.MINOR.PATCH.
    STAGING_VERSION="v0.${KUBE_MINOR}.${KUBE_PATCH}"
    STAMP="kube-apiserver=${KUBE_VERSION} etcd=${ETCD_VERSION} helm=${HELM_VERSION}"

    CACHE_ROOT="${TASKFLOW_KUBE_CACHE:-${HOME}/.cache/taskflow/kube}"
    mkdir -p "${CACHE_ROOT}"
    CACHE_ROOT="$(cd "${CACHE_ROOT}" && pwd -P)"
    DEST="${CACHE_ROOT}/${KUBE_VERSION}"
    MARKER="${DEST}/.complete"
}

is_complete() { [[ -f "${MARKER}" && "$(cat "${MARKER}" 2>/dev/null)" == "${STAMP}" ]]; }

# --- Go toolchain (only needed when something must be built) ---------------------------------
check_go() {
    if ! command -v go >/dev/null 2>&1; then
        if [[ -x /usr/local/go/bin/go ]]; then
            PATH="/usr/local/go/bin:${PATH}"
        else
            no_go "the 'go' command was not found"
        fi
    fi
    GO_VERSION="$(go env GOVERSION 2>/dev/null)" || no_go "'go env GOVERSION' failed"
    local go_minor
    go_minor="$(sed -nE 's/^go1\.([0-9]+).*/\1/p' <<<"${GO_VERSION}")"
    if [[ -z "${go_minor}" || "${go_minor}" -lt "${MIN_GO_MINOR}" ]]; then
        if [[ "$(go env GOTOOLCHAIN)" == local* ]]; then
            no_go "found ${GO_VERSION} ($(command -v go)), older than go1.${MIN_GO_MINOR} (GOTOOLCHAIN=local)"
        fi
        log "warning: ${GO_VERSION} is older than go1.${MIN_GO_MINOR}; relying on GOTOOLCHAIN=$(go env GOTOOLCHAIN)"
    fi
}

gocmd() { nice -n 10 go "$@"; }

# Run "$@" and log how long it took.
timed() {
    local what="$1" start=${SECONDS}
    shift
    log "${what}: started"
    "$@"
    log "${what}: done in $((SECONDS - start))s"
}

# --- kube-apiserver --------------------------------------------------------------------------
build_kube_apiserver() {
    local dir="${WORK}/kube-apiserver"
    mkdir -p "${dir}"
    cd "${dir}"

    local info gomod
    info="$(gocmd mod download -json "k8s.io/kubernetes@${KUBE_VERSION}")" \
        || die "go mod download k8s.io/kubernetes@${KUBE_VERSION} failed: ${info:-}"
    gomod="$(sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?[[:space:]]*$/\1/p' <<<"${info}")"
    [[ -f "${gomod}" ]] || die "could not find the go.mod of k8s.io/kubernetes@${KUBE_VERSION} in: ${info}"

    # Every staging module k8s.io/X => ./staging/... in upstream's go.mod becomes X@v0.MINOR.PATCH.
    local -a modules
    mapfile -t modules < <(sed -nE \
        's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/.*#\2#p' \
        "${gomod}" | sort -u)
    [[ ${#modules[@]} -gt 0 ]] || die "no ./staging replaces found in ${gomod}"
    log "kube-apiserver: ${#modules[@]} staging modules pinned to ${STAGING_VERSION}"

    gocmd mod init taskflow.invalid/kube-apiserver-build
    local -a edits=()
    local m
    for m in "${modules[@]}"; do
        edits+=("-replace=${m}=${m}@${STAGING_VERSION}")
    done
    # Same language version and GODEBUG defaults as upstream's own main module.
    local upstream_go
    upstream_go="$(sed -nE 's/^go[[:space:]]+([0-9.]+)[[:space:]]*$/\1/p' "${gomod}" | head -n1)"
    if [[ -n "${upstream_go}" ]]; then
        edits+=("-go=${upstream_go}")
    fi
    local kv
    while read -r kv; do
        if [[ -n "${kv}" ]]; then
            edits+=("-godebug=${kv}")
        fi
    done < <(awk '/^godebug[[:space:]]*\(/{b=1;next} b&&/^\)/{b=0;next} b{print $1} /^godebug[[:space:]]+[^(]/{print $2}' "${gomod}")
    gocmd mod edit "${edits[@]}"

    gocmd get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}"

    # Same variables as upstream's hack/lib/version.sh sets (component-base and client-go).
    local ldflags="-s -w" pkg
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
        ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${KUBE_MINOR}"
        ldflags+=" -X ${pkg}.gitTreeState=clean"
        ldflags+=" -X ${pkg}.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    done
    # Tags as in upstream's hack/lib/golang.sh for non-debug builds.
    gocmd build -trimpath -tags selinux,notest,grpcnotrace -ldflags "${ldflags}" \
        -o "${OUT}/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
}

# --- etcd --------------------------------------------------------------------------------------
build_etcd() {
    local dir="${WORK}/etcd"
    mkdir -p "${dir}"
    cd "${dir}"
    # `go install ...@version` refuses modules with replace directives, so build it as a dependency.
    gocmd mod init taskflow.invalid/etcd-build
    gocmd get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    gocmd build -trimpath -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" \
        -o "${OUT}/etcd" go.etcd.io/etcd/server/v3
}

# --- helm ----------------------------------------------------------------------------------------
build_helm() {
    cd "${WORK}"
    # Compile our Kubernetes version in (defaults to 1.20), so `helm template`/`helm lint`
    # target it without --kube-version. Variables as in helm's Makefile.
    local ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
    ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    local pkg
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        ldflags+=" -X ${pkg}.k8sVersionMajor=1 -X ${pkg}.k8sVersionMinor=${KUBE_MINOR}"
    done
    # `go install pkg@version` runs outside any module and rejects -mod=mod.
    GOFLAGS="${GOFLAGS/-mod=mod/}" GOBIN="${OUT}" \
        gocmd install -trimpath -ldflags "${ldflags}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
}

# --- main ------------------------------------------------------------------------------------------
main() {
    setup
    # Fast path: no lock needed, the marker only ever appears after everything else is in place.
    if is_complete; then
        echo "${DEST}"
        return 0
    fi
    check_go

    exec 9>"${CACHE_ROOT}/.lock"
    if ! flock -n 9; then
        log "another build holds ${CACHE_ROOT}/.lock; waiting for it"
        flock 9
    fi
    if is_complete; then  # built by whoever held the lock
        echo "${DEST}"
        return 0
    fi

    # Holding the lock, any other build directory is left over from a killed run.
    rm -rf "${CACHE_ROOT}"/.build-*
    WORK="$(mktemp -d "${CACHE_ROOT}/.build-${KUBE_VERSION}.XXXXXX")"
    trap 'rm -rf "${WORK}"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    OUT="${WORK}/out"
    mkdir -p "${OUT}"

    export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=mod"
    export CGO_ENABLED=0  # upstream builds all three statically

    local total_start=${SECONDS}
    log "building ${STAMP} with ${GO_VERSION} into ${DEST} (5-30 minutes cold)"
    {
        timed "etcd ${ETCD_VERSION}" build_etcd
        timed "helm ${HELM_VERSION}" build_helm
        timed "kube-apiserver ${KUBE_VERSION}" build_kube_apiserver
    } >&2

    "${OUT}/kube-apiserver" --version >&2 || die "the built kube-apiserver does not run"
    "${OUT}/etcd" --version >&2 || die "the built etcd does not run"
    "${OUT}/helm" version --short >&2 || die "the built helm does not run"

    # A stale, incomplete or differently pinned directory is moved aside, never written into.
    if [[ -e "${DEST}" ]]; then
        mv "${DEST}" "${WORK}/stale"
    fi
    mv "${OUT}" "${DEST}"
    printf '%s\n' "${STAMP}" >"${DEST}/.complete.tmp"
    mv "${DEST}/.complete.tmp" "${MARKER}"
    log "all binaries built in $((SECONDS - total_start))s"
    echo "${DEST}"
}

# Everything above only defines functions, so bash has read the whole file before anything runs:
# editing this script during a long build cannot corrupt the running one.
main "$@"
exit
