#!/usr/bin/env bash
# The 5-minute tour, run for real in a throwaway network namespace so the host is never touched:
# build, validate every shipped profile, diff, apply, history, rollback, and show the kernel agreeing.
#
#   examples/demo.sh                     # cargo build --release (progress shown), then the tour
#   examples/demo.sh --profile dev       # other cargo build arguments: a faster debug build
#   SYSPROF=/path/to/sysprof examples/demo.sh   # no build: tour this binary
#
# The binary lands wherever cargo puts it (CARGO_TARGET_DIR and .cargo/config are honoured: the
# path comes from cargo's own build report), and the last lines say where it is. The tour needs
# root (it creates a network namespace); the build does not.
set -euo pipefail
cd "$(dirname "$0")/.."

build() {
    echo "== cargo build ${*:---release} (first build: a few minutes)" >&2
    # Progress goes to stderr as usual; stdout carries cargo's JSON build report, whose
    # `executable` field is the binary's real path.
    cargo build "${@:---release}" --bin sysprof --message-format=json-render-diagnostics |
        sed -n 's/.*"executable":"\([^"]*\/sysprof\)".*/\1/p' | tail -n 1
}

if [ -n "${SYSPROF:-}" ]; then
    bin=$SYSPROF
else
    bin=$(build "$@")
fi
if [ ! -x "$bin" ]; then
    echo "examples/demo.sh: no sysprof binary at '${bin}'" >&2
    exit 1
fi
where() {
    echo
    echo "sysprof is at $bin"
    echo "put it on PATH with:  cargo install --path .    (or: export PATH=\"$(dirname "$bin"):\$PATH\")"
}
if [ "$(id -u)" != 0 ]; then
    where
    echo "the tour creates a network namespace and needs root: sudo SYSPROF=$bin $0" >&2
    exit 1
fi

ns="sysprof-demo-$$"
work=$(mktemp -d)
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
ip netns add "$ns"
sp() { "$bin" --netns "$ns" --state-dir "$work/state" --sysctl-d "$work/sysctl.d" "$@"; }
mkdir -p "$work/sysctl.d"
peek() { ip netns exec "$ns" sh -c 'for k in tcp_fin_timeout tcp_syn_retries ip_local_port_range; do printf "  %-22s %s\n" $k "$(cat /proc/sys/net/ipv4/$k)"; done'; }

echo "== validate every shipped profile for this kernel"
"$bin" validate profiles/*.yaml
echo; echo "== the namespace $ns before"; peek
echo; echo "== diff datacenter-client"
sp diff profiles/datacenter-client.yaml || true
echo; echo "== apply"
sp apply profiles/datacenter-client.yaml
echo; echo "== the namespace after"; peek
echo; echo "== persisted file"; cat "$work/sysctl.d/99-sysprof.conf"
echo; echo "== history"; sp history
echo; echo "== rollback"; sp rollback
echo; echo "== the namespace after rollback"; peek
echo; echo "== history"; sp history
where
