#!/usr/bin/env bash
# curl for the tests that run README.md's curl walk-throughs (reference-shop/tests/
# readme_walkthrough.rs, which fails under CI=true without it): installs Debian's curl when
# missing; nothing to do (and no time spent) when it is there.
set -euo pipefail
if command -v curl >/dev/null; then
    echo "curl: $(command -v curl)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "curl is not installed and installing it needs root" >&2
    exit 1
fi
started=$SECONDS
echo "installing Debian's curl"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl ca-certificates >/dev/null
echo "curl installed in $((SECONDS - started)) s"
