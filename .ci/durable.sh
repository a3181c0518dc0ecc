#!/usr/bin/env bash
# The durable broker's release-only checks (issue 15): the crash harness, which SIGKILLs a
# publishing and consuming child 60 times and checks that no confirmed publish is lost and no
# confirmed ack is undone, and the recovery of a million pending messages (prints its time).
set -euo pipefail
cd "$(dirname "$0")/.."
LEVEE_CRASH_KILLS="${LEVEE_CRASH_KILLS:-60}" \
    cargo test --release -p levee-queue --features durable --test durable_crash -- --nocapture
cargo test --release -p levee-queue --features durable --test durable_recovery -- --nocapture
