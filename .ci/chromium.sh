#!/usr/bin/env bash
# Chromium and chromedriver for the shop's browser tests (reference-shop/tests/browser.rs,
# which fail under CI=true without them): installs Debian's chromium and chromium-driver when
# either is missing; nothing to do (and no time spent) when both are there.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "chromium: $(command -v chromium), chromedriver: $(command -v chromedriver)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "chromium or chromedriver is not installed and installing them needs root" >&2
    exit 1
fi
started=$SECONDS
echo "installing Debian's chromium and chromium-driver"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
echo "chromium $(chromium --version 2>/dev/null | awk '{print $2}') installed in $((SECONDS - started)) s"
