#!/usr/bin/env bash
# curl for the tests that run README.md's curl walk-throughs (reference-shop/tests/
# readme_walkthrough.rs, which fails under CI=true without it): installs Debian's curl when
# missing; nothing to do (and no time spent) when it is there.
exec bash "$(dirname "$0")/debian-tools.sh" curl -- curl ca-certificates
