#!/usr/bin/env bash
# The shop's HTTP contract checked by an independent fuzzer (one line of .ci/run:
# `bash .ci/schemathesis.sh`).
#
# 1. installs Schemathesis (pinned) from PyPI into a virtual environment under the target
#    directory (python3 -m venv; reused while the version matches);
# 2. starts the shop ($LEVEE_SHOP_BIN, or a release build) on a free loopback port in a
#    temporary directory, with the per-client and sign-up rate limits raised so the fuzzer's
#    bursts are not refused with 429;
# 3. runs `st run` against the document the shop serves (`/openapi.json`) with every check,
#    all phases (examples, coverage, fuzzing, and the stateful phase that follows the
#    document's links: create a customer, add to the cart, place the order, read it, cancel
#    it), bounded by --max-examples and --max-time; any failure fails CI.
#
# .ci/schemathesis.toml lists the rejections by design a schema cannot express.
# `PUT /admin/faults` is left out: the fuzzer would inject ten minutes of store latency and
# stall the rest of the run (tests/bad_input.rs and the fault tests cover that operation).
# So is `PATCH /admin/settings`: a valid patch (one request an hour per client, one request
# at a time) would turn the rest of the run into 429s and 503s (tests/live_settings.rs
# covers it).
# The shop and the temporary directory are removed through .ci/cleanup.sh's on_exit.
# After the build it takes about two minutes (--max-time 100 bounds the fuzzer). The seed is
# fixed (LEVEE_SCHEMATHESIS_SEED sets another), though the time bound still makes a run vary.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/cleanup.sh
. .ci/cleanup.sh
# shellcheck source=.ci/shop.sh
. .ci/shop.sh

schemathesis_version=4.32.5
target_dir=${CARGO_TARGET_DIR:-target}
venv="$target_dir/schemathesis-venv"
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$schemathesis_version"; then
    echo "installing schemathesis $schemathesis_version into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "schemathesis==$schemathesis_version"
fi
"$venv/bin/st" --version

ci_shop_binary
export SHOP_EDGE__RATE__COUNT=100000
export SHOP_EDGE__RATE__BURST=100000
export SHOP_LIMITS__SIGNUP__COUNT=100000
export SHOP_LIMITS__SIGNUP__BURST=100000
ci_start_shop 18280 18380
base=$shop_url
admin_token=$shop_admin_token

# The customer whose API key the fuzzer sends (the stateful phase creates more).
api_key=$(curl -fsS -X POST -H 'content-type: application/json' -d '{"name": "schemathesis"}' \
    "$base/customers" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"])')

status=0
"$venv/bin/st" --no-color --config-file .ci/schemathesis.toml run "$base/openapi.json" \
    --checks all \
    --header "X-Api-Key: $api_key" \
    --header "X-Admin-Token: $admin_token" \
    --exclude-operation-id setFaults \
    --exclude-operation-id changeSettings \
    --max-examples 40 \
    --max-time 100 \
    --request-timeout 10 \
    --seed "${LEVEE_SCHEMATHESIS_SEED:-20261206}" \
    --generation-database none \
    --report junit --report-dir "$shop_dir/report" || status=$?
if [ "$status" != 0 ]; then
    echo "schemathesis found failures (exit $status)" >&2
    ci_shop_log_tail
    exit "$status"
fi
echo "schemathesis: no failures"
