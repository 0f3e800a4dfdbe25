#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed time and reports executions and crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 60 seconds for each target in fuzz/
#
# Needs the nightly toolchain (libFuzzer instrumentation); installs cargo-fuzz when missing.
# Not part of CI's test run: tests/proptest_parsers.rs checks the same invariants in `cargo test`.
# Crash inputs land in fuzz/artifacts/TARGET/; replay one with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-…
# and keep it as a regression test at the bottom of tests/proptest_parsers.rs.
# sysprof has no unsafe code, so targets build without AddressSanitizer by default (3-4x
# more executions); FUZZ_SANITIZER=address brings it back.
# Exit status: 0 when no target crashed, 1 when one did, 2 when the tools are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi

if ! command -v rustup >/dev/null || ! rustup toolchain list | grep -q '^nightly'; then
    echo "error: cargo-fuzz needs the nightly toolchain, which this machine lacks" >&2
    echo "  install it with: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Seed inputs: the shipped profiles for the YAML readers, small files for the others.
seeds() {
    case $1 in
        yaml | profile) echo profiles ;;
        *) [ -d "fuzz/seeds/$1" ] && echo "fuzz/seeds/$1" ;;
    esac
    return 0
}
# libFuzzer flags: a dictionary of the target's syntax when there is one.
flags() {
    [ -f "fuzz/dicts/$1.dict" ] && echo "-dict=fuzz/dicts/$1.dict"
    return 0
}

logs=$(mktemp -d)
echo "building fuzz targets with nightly (logs in $logs)…"
if ! cargo +nightly fuzz build --sanitizer "$sanitizer" >"$logs/build.log" 2>&1; then
    tail -30 "$logs/build.log" >&2
    echo "error: building the fuzz targets failed" >&2
    exit 2
fi
failed=0
printf '%-10s %14s %10s %8s %8s  %s\n' target executions exec/s corpus crashes result
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
    before=$(find "fuzz/artifacts/$target" -type f | wc -l)
    log="$logs/$target.log"
    touch "$log"
    status=0
    # stdin is /dev/null so that nothing a target does can wait on a terminal.
    # shellcheck disable=SC2046 # seeds and flags are single words or nothing
    cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "fuzz/corpus/$target" \
        $(seeds "$target") -- $(flags "$target") -use_value_profile=1 \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        </dev/null >"$log" 2>&1 || status=$?
    after=$(find "fuzz/artifacts/$target" -type f | wc -l)
    crashes=$((after - before))
    stat_of() { grep -o "^stat::$1: *[0-9]*" "$log" | tail -1 | grep -o '[0-9]*$' || echo '?'; }
    corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
    if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
        failed=1
        result="FAILED (exit $status), see $log"
    else
        result=ok
    fi
    printf '%-10s %14s %10s %8s %8s  %s\n' "$target" "$(stat_of number_of_executed_units)" \
        "$(stat_of average_exec_per_sec)" "$corpus" "$crashes" "$result"
    if [ "$crashes" -gt 0 ] || [ "$status" -ne 0 ]; then
        grep -m1 -B2 -A12 "panicked at\|ERROR: libFuzzer\|SUMMARY" "$log" | sed 's/^/    /' || tail -20 "$log"
        find "fuzz/artifacts/$target" -type f -cnewer "$logs/build.log" | sed 's/^/    artifact: /'
    fi
done
exit $failed
