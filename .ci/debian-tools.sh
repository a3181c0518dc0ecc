#!/usr/bin/env bash
# `bash .ci/debian-tools.sh COMMAND... -- PACKAGE...`: installs Debian's PACKAGEs when any of
# the COMMANDs is missing from the PATH (and says how long it took); nothing to do, and no
# time spent, when they are all there. Shared by the scripts that need a tool for the tests
# (.ci/curl.sh, .ci/chromium.sh).
set -euo pipefail
commands=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    commands+=("$1")
    shift
done
if [ "$#" -lt 2 ] || [ "${#commands[@]}" -eq 0 ]; then
    echo "usage: $0 COMMAND... -- PACKAGE..." >&2
    exit 2
fi
shift # the --
missing=""
for command in "${commands[@]}"; do
    if path=$(command -v "$command"); then
        echo "$command: $path"
    else
        missing="$missing $command"
    fi
done
if [ -z "$missing" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "missing:$missing; installing $* needs root" >&2
    exit 1
fi
started=$SECONDS
echo "missing:$missing; installing Debian's $*"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
echo "$* installed in $((SECONDS - started)) s"
