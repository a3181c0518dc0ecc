# Redis for levee-redis's tests, sourced by .ci/run (`source .ci/redis.sh`).
#
# Installs Debian's redis-server if missing, starts one on 127.0.0.1 on a free port in a
# temporary directory with no persistence, and exports
#   LEVEE_TEST_REDIS_URL    the server the tests share (redis://127.0.0.1:PORT/)
#   LEVEE_REDIS_SERVER_BIN  redis-server itself, for the tests and benches that start, kill
#                           and restart servers of their own
# It is stopped on exit: `stop_redis` is added to the shell's EXIT trap, after whatever that
# trap already runs (other services' scripts can do the same), never in its place.

redis_ci_dir=""
redis_ci_pid=""

stop_redis() {
    if [ -n "$redis_ci_pid" ]; then
        kill "$redis_ci_pid" 2>/dev/null || true
        wait "$redis_ci_pid" 2>/dev/null || true
        redis_ci_pid=""
    fi
    if [ -n "$redis_ci_dir" ]; then
        rm -rf "$redis_ci_dir"
        redis_ci_dir=""
    fi
}

# Runs `$1` on exit as well as what the EXIT trap already runs.
redis_add_exit_trap() {
    local command=$1 previous=""
    # `trap -p EXIT` prints `trap -- 'COMMAND' EXIT`, quoted for the shell to read back.
    eval "set -- $(trap -p EXIT)"
    previous=${3:-}
    # shellcheck disable=SC2064 # expand now: the command list is fixed here
    trap "${previous:+$previous; }$command" EXIT
}

start_redis() {
    local bin
    bin=$(command -v redis-server || true)
    if [ -z "$bin" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "redis-server is not installed and installing it needs root" >&2
            return 1
        fi
        echo "installing Debian's redis-server"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
        bin=$(command -v redis-server)
    fi
    local port=""
    for candidate in $(seq 63790 63890); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
            port=$candidate
            break
        fi
    done
    if [ -z "$port" ]; then
        echo "no free port for redis-server" >&2
        return 1
    fi
    redis_ci_dir=$(mktemp -d /tmp/levee-ci-redis.XXXXXX)
    redis_add_exit_trap stop_redis
    "$bin" --bind 127.0.0.1 --port "$port" --dir "$redis_ci_dir" --save '' --appendonly no \
        --logfile "$redis_ci_dir/redis.log" --daemonize no &
    redis_ci_pid=$!
    local tries=0
    until [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = "PONG" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 100 ] || ! kill -0 "$redis_ci_pid" 2>/dev/null; then
            echo "redis-server did not start:" >&2
            cat "$redis_ci_dir/redis.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    export LEVEE_TEST_REDIS_URL="redis://127.0.0.1:$port/"
    export LEVEE_REDIS_SERVER_BIN="$bin"
    echo "redis $("$bin" --version | awk '{print $3}') on 127.0.0.1:$port"
}

step "redis for the levee-redis tests"
start_redis
