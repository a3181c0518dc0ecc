# shellcheck shell=bash
# Prometheus for CI. Sourced (by .ci/dashboard.sh) it defines `ci_need_prometheus`, which
# installs Debian's prometheus package (prometheus and promtool) if either is missing.
# Run (`bash .ci/prometheus.sh`, one line of .ci/run) it checks the shop's alert rules and
# runs their unit tests:
#
#   promtool check rules reference-shop/alerts/shop.rules.yml
#   promtool test rules reference-shop/alerts/shop.rules.test.yml

ci_need_prometheus() {
    if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "prometheus is not installed and installing it needs root" >&2
        return 1
    fi
    echo "installing Debian's prometheus (prometheus, promtool)"
    apt-get update -qq
    # --no-install-recommends: the node exporter and friends are not needed here.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # The package starts a system Prometheus on 0.0.0.0:9090 where an init system runs; CI
    # starts its own on loopback instead.
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
        systemctl stop prometheus || true
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/.."
    ci_need_prometheus
    echo "promtool $(promtool --version 2>&1 | awk 'NR == 1 {print $3}')"
    promtool check rules reference-shop/alerts/shop.rules.yml
    promtool test rules reference-shop/alerts/shop.rules.test.yml
fi
