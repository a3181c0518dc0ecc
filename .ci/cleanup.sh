# shellcheck shell=bash
# One EXIT trap for the whole CI run, shared by every server it starts (and two helpers
# those scripts share: a free port, stopping a server).
#
# Source this file, then register a command with `on_exit CMD [ARGS...]`: when the shell exits
# (normally, on `set -e` failure, or on INT/TERM) every registered command runs, newest first,
# each one even if an earlier one failed. A script that starts a server registers its stop
# command instead of setting `trap ... EXIT` itself, so several servers never overwrite each
# other's trap. Sourcing it twice is harmless.
if [ -z "${levee_ci_cleanup_loaded:-}" ]; then
    levee_ci_cleanup_loaded=1
    levee_ci_cleanups=()
    levee_ci_run_cleanups() {
        local i
        for ((i = ${#levee_ci_cleanups[@]} - 1; i >= 0; i--)); do
            "${levee_ci_cleanups[i]}" || true
        done
        levee_ci_cleanups=()
    }
    on_exit() {
        levee_ci_cleanups+=("$1")
    }
    # ci_free_port FROM TO: prints the first port in FROM..TO nothing listens on, on 127.0.0.1.
    ci_free_port() {
        local candidate
        for candidate in $(seq "$1" "$2"); do
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
                echo "$candidate"
                return 0
            fi
        done
        return 1
    }
    # ci_wait_http URL PID LOG: waits up to 60 s for URL to answer 200 while PID lives; when
    # it does not, prints the end of LOG and fails.
    ci_wait_http() {
        local tries=0
        until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
            tries=$((tries + 1))
            if [ "$tries" -gt 300 ] || ! kill -0 "$2" 2>/dev/null; then
                echo "$1 did not come up; the log:" >&2
                tail -n 40 "$3" >&2 || true
                return 1
            fi
            sleep 0.2
        done
    }
    # ci_stop_server PID DIR: stops a server this run started and removes its directory.
    ci_stop_server() {
        if [ -n "$1" ]; then
            kill "$1" 2>/dev/null || true
            wait "$1" 2>/dev/null || true
        fi
        if [ -n "$2" ]; then rm -rf "$2"; fi
    }
    trap levee_ci_run_cleanups EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
fi
