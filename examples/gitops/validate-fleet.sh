#!/usr/bin/env bash
# CI job: validate every profile offline for every kernel and Kubernetes version of the fleet,
# check the pod sysctls of the Kubernetes manifests before `kubectl apply`, render pod sysctls,
# and publish the rollout plan of every profile as JSON.
#
#   examples/gitops/validate-fleet.sh [PROFILES_DIR] [OUT_DIR] [MANIFESTS_DIR]
#
# Environment: SYSPROF (the binary, default `sysprof`), FLEET_ENV (default: fleet.env next to
# this script), HOSTS (default: hosts.txt next to this script). MANIFESTS_DIR defaults to
# examples/kubernetes. Exits non-zero on the first invalid profile or manifest, naming it;
# sysprof prints the findings with file:line:col.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
profiles="${1:-$here/../../profiles}"
out="${2:-out}"
manifests="${3:-$here/../kubernetes}"
sysprof="${SYSPROF:-sysprof}"
# shellcheck source=fleet.env
. "${FLEET_ENV:-$here/fleet.env}"
hosts="${HOSTS:-$here/hosts.txt}"
mkdir -p "$out"

shopt -s nullglob
files=("$profiles"/*.yaml)
[ ${#files[@]} -gt 0 ] || { echo "no profiles in $profiles" >&2; exit 3; }
manifest_files=("$manifests"/*.yaml)
allowed=()
[ -z "${KUBELET_ALLOWED_UNSAFE:-}" ] || allowed=(--allowed-unsafe "$KUBELET_ALLOWED_UNSAFE")

for kernel in $KERNELS; do
    for k8s in $K8S_VERSIONS; do
        echo "validate: kernel $kernel, Kubernetes $k8s"
        args=(validate --kernel "$kernel" --k8s "$k8s" --deny-warnings "${files[@]}")
        if ! "$sysprof" --format json "${args[@]}" > "$out/validate-kernel$kernel-k8s$k8s.json"; then
            "$sysprof" --color never "${args[@]}" >&2 || true   # the findings, file:line:col
            echo "error: profiles are invalid for kernel $kernel, Kubernetes $k8s" >&2
            exit 3
        fi
        [ ${#manifest_files[@]} -gt 0 ] || continue
        # What the API server and the kubelets of this fleet would reject, before kubectl apply.
        echo "k8s check: kernel $kernel, Kubernetes $k8s"
        args=(k8s check --kernel "$kernel" --k8s "$k8s" "${allowed[@]}" "${manifest_files[@]}")
        if ! "$sysprof" --format json "${args[@]}" > "$out/k8s-check-kernel$kernel-k8s$k8s.json"; then
            "$sysprof" --color never "${args[@]}" >&2 || true
            echo "error: manifests would be rejected on kernel $kernel, Kubernetes $k8s" >&2
            exit 3
        fi
    done
done

for profile in "${files[@]}"; do
    name="$(basename "$profile" .yaml)"
    # Every profile passed validation above, so the only expected refusal is "no rollout".
    if "$sysprof" --color never rollout plan "$profile" --hosts "$hosts" --format json \
            > "$out/plan-$name.json" 2> "$out/.plan-error"; then
        echo "plan: $name -> $out/plan-$name.json"
    elif grep -q "has no \`rollout\` section" "$out/.plan-error"; then
        rm -f "$out/plan-$name.json"
        echo "plan: $name has no rollout section (applied by other means, e.g. pod sysctls)"
    else
        cat "$out/.plan-error" >&2
        exit 1
    fi
    rm -f "$out/.plan-error"
    if grep -Eq '^\s+kubernetes_pod:\s+true' "$profile"; then
        for k8s in $K8S_VERSIONS; do
            "$sysprof" --format json k8s pod-sysctls "$profile" --k8s "$k8s" \
                > "$out/pod-sysctls-$name-k8s$k8s.json"
        done
        echo "pod sysctls: $name"
    fi
done
echo "published $(ls "$out" | wc -l) file(s) in $out"
