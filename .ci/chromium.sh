#!/usr/bin/env bash
# Chromium and chromedriver for the shop's browser tests (reference-shop/tests/browser.rs,
# which fail under CI=true without them): Debian's chromium and chromium-driver, installed
# when either is missing.
exec bash "$(dirname "$0")/debian-tools.sh" chromium chromedriver -- chromium chromium-driver
