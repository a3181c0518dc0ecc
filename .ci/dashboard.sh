#!/usr/bin/env bash
# The shop's Grafana dashboard and alert rules checked against a real Prometheus (one line of
# .ci/run: `bash .ci/dashboard.sh`; runs locally the same way).
#
# 1. builds the shop (or takes $LEVEE_SHOP_BIN) and starts it on 127.0.0.1 on a free port
#    with a temporary data directory;
# 2. starts Debian's Prometheus (installed if missing) on 127.0.0.1 on a free port, storage in
#    the same temporary directory, scraping the shop every second and loading
#    reference-shop/alerts/shop.rules.yml;
# 3. runs the open-loop load generator with reference-shop/scenarios/ci-dashboard.toml (25 s,
#    a provider outage in the middle, so the breaker, retry and dead-letter panels move);
# 4. .ci/dashboard_check.py asks Prometheus, through its HTTP API, for every query of every
#    panel of reference-shop/dashboards/grafana.json over the load's window: a panel with a
#    query without data fails the run with its title; every rule group must be loaded and
#    every rule healthy.
# Everything listens on loopback only and is stopped (and its directory removed) on exit,
# through .ci/cleanup.sh's on_exit. After the build it takes about a minute; each wait is
# bounded so a hang fails in well under three minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=.ci/cleanup.sh
. .ci/cleanup.sh
# shellcheck source=.ci/prometheus.sh
. .ci/prometheus.sh
# shellcheck source=.ci/shop.sh
. .ci/shop.sh

ci_need_prometheus
if ! command -v python3 >/dev/null; then
    echo "python3 is needed for .ci/dashboard_check.py" >&2
    exit 1
fi

ci_shop_binary
ci_start_shop 18080 18180
# Prometheus keeps its files beside the shop's; it stops before the shop (on_exit runs newest
# first).
dash_dir=$shop_dir
dash_prom_pid=""
stop_dashboard_prometheus() {
    ci_stop_server "$dash_prom_pid" ""
    dash_prom_pid=""
}
on_exit stop_dashboard_prometheus

prom_port=$(ci_free_port 19090 19190)
rules="$PWD/reference-shop/alerts/shop.rules.yml"
cat >"$dash_dir/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
scrape_configs:
  - job_name: shop
    static_configs:
      - targets: ['127.0.0.1:$shop_port']
YAML
promtool check config "$dash_dir/prometheus.yml"
prometheus --config.file="$dash_dir/prometheus.yml" --storage.tsdb.path="$dash_dir/prometheus" \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$dash_dir/prometheus.log" 2>&1 &
dash_prom_pid=$!
ci_wait_http "http://127.0.0.1:$prom_port/-/ready" "$dash_prom_pid" "$dash_dir/prometheus.log"
echo "prometheus $(prometheus --version 2>&1 | awk 'NR == 1 {print $3}') on 127.0.0.1:$prom_port"

start=$(date +%s)
timeout 120 "$shop_bin" loadgen --target "$shop_url" --admin-token "$shop_admin_token" \
    --scenario reference-shop/scenarios/ci-dashboard.toml --progress lines \
    --json "$dash_dir/load.json"
# Two more scrapes and rule evaluations after the last request.
sleep 3
end=$(date +%s)

python3 .ci/dashboard_check.py --prometheus "http://127.0.0.1:$prom_port" \
    --dashboard reference-shop/dashboards/grafana.json --start "$start" --end "$end" \
    --var job=shop --rules "$rules"
