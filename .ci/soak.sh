#!/usr/bin/env bash
# The soak (issue 14 item 9; one line of .ci/run: `bash .ci/soak.sh`; runs locally the same
# way). Takes the shop binary ($LEVEE_SHOP_BIN, or builds it in release), starts it on
# 127.0.0.1 on a free port with a temporary data directory and its default limits, and runs
# `reference-shop soak` against it: mixed traffic at 100 requests a second with the payment
# provider slow, failing and back every minute; then no 5xx other than 503 shedding, the
# shop's RSS flat after the warm-up, and every unit of stock accounted for. Exits non-zero on
# any violation. The JSON summary is kept as target/soak.json.
#
# SOAK_MINUTES (default 3, at most 60) sets the length: `SOAK_MINUTES=60 bash .ci/soak.sh` is
# the hour-long run. The shop and its directory are removed through .ci/cleanup.sh's
# on_exit. Each wait is bounded: the soak itself by its duration plus five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/cleanup.sh
. .ci/cleanup.sh
# shellcheck source=.ci/shop.sh
. .ci/shop.sh

soak_started=$SECONDS
minutes=${SOAK_MINUTES:-3}
case "$minutes" in
    '' | *[!0-9]*) echo "SOAK_MINUTES must be a number of minutes, 1 to 60" >&2; exit 2 ;;
esac
target_dir=${CARGO_TARGET_DIR:-target}

ci_shop_binary
ci_start_shop 18480 18580

# The soak's own bound: its duration, plus seeding, the queue's drain and the checks.
status=0
timeout --signal=INT --kill-after=30 $((minutes * 60 + 300)) \
    "$shop_bin" soak --target "$shop_url" --pid "$shop_pid" \
    --admin-token "$shop_admin_token" --duration "${minutes}m" --progress lines \
    --json "$target_dir/soak.json" || status=$?
if [ "$status" -ne 0 ]; then
    echo "soak failed (exit $status)" >&2
    ci_shop_log_tail
fi
echo "soak: ${minutes} min of load, $((SECONDS - soak_started)) s in all (build included)"
exit "$status"
