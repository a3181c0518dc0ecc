#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails on any crash.
#
# Installs the nightly toolchain and cargo-fuzz (pinned) when missing, builds all targets
# once (libFuzzer + AddressSanitizer, optimised with debug assertions and overflow checks, in
# the dedicated target directory fuzz/target), then runs each target on a fresh corpus made
# from its seeds in fuzz/seeds/<target>/, a few targets at a time, and prints per target its
# run time and executions per second as libFuzzer reports them.
#
# A crash's input is kept in fuzz/artifacts/<target>/ (replay and minimise: fuzz/README.md).
# A target listed in KNOWN_FAILING below (with the reason and the issue) is still run and
# reported, but its crash does not fail the run, until the fix lands; a known-failing target
# that passes is reported so the entry can go.
#
# Settings (environment):
#   LEVEE_FUZZ_SECONDS  seconds per target (default 20: with 2 CPUs the runs take about
#                       (targets x 20 / 2) s, about 3 minutes for 17 targets, inside CI's 45
#                       minutes; raise it on longer jobs)
#   LEVEE_FUZZ_JOBS     targets run at once (default: the number of CPUs)
#   LEVEE_FUZZ_TARGETS  the targets to run, space-separated (default: all)
#   LEVEE_FUZZ_BUILD_ONLY  set: build every target and stop (.ci/run builds in the background)
#   LEVEE_FUZZ_CODEGEN_UNITS  codegen units per crate (default 2). cargo-fuzz uses 1 in
#                       release builds, so that ThinLTO can inline across the sancov-marked
#                       code: faster fuzzing, but every crate compiles on one core and the
#                       build's critical path (the shop, sqlx, hyper) may leave a core idle.
#                       Not yet measured side by side: 760 s with 1 unit (16 targets), 836 s
#                       with 2 (17 targets, a larger dependency graph), executions per second
#                       unchanged. An A/B on one machine decides the default.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2

# target -> why it fails today. Keep each entry until its fix lands on main.
declare -A KNOWN_FAILING=()

seconds=${LEVEE_FUZZ_SECONDS:-20}
codegen_units=${LEVEE_FUZZ_CODEGEN_UNITS:-2}
jobs=${LEVEE_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
started=$SECONDS

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "installing the nightly toolchain (cargo-fuzz needs it for the sanitizers)"
    rustup toolchain install nightly --profile minimal
fi
if [ "$(cargo fuzz --version 2>/dev/null | head -n 1)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# The fuzz build's own target directory: the sanitizer flags never touch the main build.
export CARGO_TARGET_DIR="$PWD/fuzz/target"
scratch=$(mktemp -d /tmp/levee-ci-fuzz.XXXXXX)
# Stops the fuzzers still running (an interrupted run) and removes the scratch directory.
stop_fuzzing() {
    local pids
    pids=$(jobs -p)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086 # one pid per word
        kill $pids 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    rm -rf "$scratch"
}
. .ci/cleanup.sh
on_exit stop_fuzzing
# Targets that write files (the shop's database) write them here.
export TMPDIR="$scratch"

targets=${LEVEE_FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
echo "cargo-fuzz $CARGO_FUZZ_VERSION, $(rustc +nightly --version)"
echo "targets: $(echo "$targets" | tr '\n' ' ')(${seconds} s each, $jobs at a time)"

build_started=$SECONDS
cargo +nightly fuzz build --codegen-units "$codegen_units"
echo "built in $((SECONDS - build_started)) s"
# .ci/run builds in the background while other steps run, and runs the targets at the end.
if [ -n "${LEVEE_FUZZ_BUILD_ONLY:-}" ]; then
    exit 0
fi

# Runs one target; its log is $scratch/<target>.log, its exit status $scratch/<target>.rc.
run_target() {
    local target=$1 corpus="$scratch/corpus/$1" artifacts="fuzz/artifacts/$1/"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "fuzz/seeds/$target" ]; then
        cp fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
    fi
    local rc=0
    # libFuzzer stops at -max_total_time; `timeout` bounds the rest (a hung input past
    # -timeout, a slow start), so the step can never hold CI up.
    timeout --kill-after=10 "$((seconds + 120))" \
        cargo +nightly fuzz run --codegen-units "$codegen_units" "$target" "$corpus" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
        -artifact_prefix="$artifacts" >"$scratch/$target.log" 2>&1 || rc=$?
    echo "$rc" >"$scratch/$target.rc"
}

for target in $targets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    run_target "$target" &
done
wait

failed=()
printf '\n%-20s %8s %12s %10s  %s\n' target seconds executions exec/s result
for target in $targets; do
    log="$scratch/$target.log"
    rc=$(cat "$scratch/$target.rc" 2>/dev/null || echo 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
    reason=${KNOWN_FAILING[$target]:-}
    if [ "$rc" = 0 ]; then
        result=ok
        if [ -n "$reason" ]; then
            result="ok, but listed as known failing: remove it from KNOWN_FAILING"
        fi
    elif [ -n "$reason" ]; then
        result="known failing: $reason"
    else
        result="FAILED (exit $rc)"
        failed+=("$target")
    fi
    printf '%-20s %8s %12s %10s  %s\n' "$target" "${took:-?}" "${runs:-?}" "${rate:-?}" "$result"
done

for target in "${failed[@]}"; do
    printf '\n==> %s failed; the end of its log:\n' "$target"
    tail -n 40 "$scratch/$target.log"
    echo "crash inputs: fuzz/artifacts/$target/ (see fuzz/README.md to replay and minimise)"
done
echo "fuzzing took $((SECONDS - started)) s"
[ "${#failed[@]}" = 0 ]
