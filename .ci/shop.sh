# shellcheck shell=bash
# The reference shop as a server for CI's checks (sourced by .ci/dashboard.sh,
# .ci/schemathesis.sh and .ci/soak.sh, after .ci/cleanup.sh).
#
#   ci_shop_binary         sets shop_bin: $LEVEE_SHOP_BIN (a binary already built: .ci/run
#                          passes the debug one its tests built) or the release build, built
#                          if needed (running a script by hand).
#   ci_start_shop FROM TO  starts `$shop_bin serve` on 127.0.0.1 on the first free port in
#                          FROM..TO, with its data under a new temporary directory and an admin
#                          token of its own, and waits until it is live. Sets shop_port,
#                          shop_url, shop_pid, shop_admin_token and shop_dir (where its log,
#                          shop.log, is; a script may keep its own files there too). Other
#                          settings: export SHOP_* variables before calling it. The shop and
#                          its directory are removed on exit (through on_exit).
#   ci_shop_log_tail       prints the end of the shop's log to stderr (after a failed check).

ci_shop_binary() {
    shop_bin=${LEVEE_SHOP_BIN:-}
    if [ -z "$shop_bin" ]; then
        echo "building the shop (release)"
        cargo build --release -q -p reference-shop
        shop_bin="${CARGO_TARGET_DIR:-target}/release/reference-shop"
    fi
}

shop_pid=""
shop_dir=""
ci_stop_shop() {
    ci_stop_server "$shop_pid" "$shop_dir"
    shop_pid=""
    shop_dir=""
}

ci_start_shop() {
    shop_dir=$(mktemp -d /tmp/levee-ci-shop.XXXXXX)
    on_exit ci_stop_shop
    shop_port=$(ci_free_port "$1" "$2")
    shop_url="http://127.0.0.1:$shop_port"
    shop_admin_token="ci-$RANDOM$RANDOM$RANDOM"
    SHOP_SERVER__ADDR="127.0.0.1:$shop_port" \
        SHOP_SERVER__ADMIN_TOKEN="$shop_admin_token" \
        SHOP_SERVER__SHUTDOWN_GRACE=2s \
        SHOP_STORAGE__DATA_DIR="$shop_dir/shop" \
        "$shop_bin" serve >"$shop_dir/shop.log" 2>&1 &
    shop_pid=$!
    ci_wait_http "$shop_url/health/live" "$shop_pid" "$shop_dir/shop.log"
    echo "shop on 127.0.0.1:$shop_port (pid $shop_pid)"
}

ci_shop_log_tail() {
    echo "the end of the shop's log:" >&2
    tail -n 40 "$shop_dir/shop.log" >&2 || true
}
