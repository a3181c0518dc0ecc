# shellcheck shell=bash
# One EXIT trap for the whole CI run, shared by every server it starts.
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
    trap levee_ci_run_cleanups EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
fi
