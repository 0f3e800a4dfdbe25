#!/usr/bin/env bash
# The 5-minute tour, run for real in a throwaway network namespace so the host is never touched:
# build, validate every shipped profile, diff, apply, history, rollback, and show the kernel agreeing.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/sysprof
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
echo; echo "== the namespace before"; peek
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
