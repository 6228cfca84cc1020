#!/usr/bin/env bash
# Set up and run: venv, Redis, a local Prometheus (unless PROMETHEUS_URL already answers), and
# the worker with its embedded beat, on the shipped rules and defaults.
# RUN_SECONDS=N stops everything after N seconds (used by the test of this command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
scripts/services.sh
mkdir -p var
export PROMETHEUS_URL=${PROMETHEUS_URL:-http://127.0.0.1:9090}
export LOG_FORMAT=${LOG_FORMAT:-console}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if ! curl -fsS "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1; then
  port=${PROMETHEUS_URL##*:}; port=${port%%/*}
  cat > var/prometheus.yml <<YAML
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
  echo "run: starting Prometheus on 127.0.0.1:$port (data in var/prometheus)" >&2
  prometheus --config.file=var/prometheus.yml --storage.tsdb.path=var/prometheus \
    --web.listen-address="127.0.0.1:$port" >var/prometheus.log 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fsS "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done
fi

# The shipped SQL rules read the application database; until DATABASE_URL points at yours, they
# run against a local copy of the documented schema (demo/schema.sql, healthy rows) instead of
# failing.
if [ -z "${DATABASE_URL:-}" ]; then
  export DATABASE_URL=sqlite:///var/app.db
  .venv/bin/python -m demo.seed >/dev/null
fi
# Problems only: the worker's start-up summary lists the receivers that print to the console.
.venv/bin/alerting check 2>/dev/null || echo "run: some rule files have problems; the good ones are served" >&2
.venv/bin/celery -A alerting worker -B --loglevel=INFO --without-gossip --without-mingle \
  --schedule=var/beat-schedule &
worker=$!
pids+=("$worker")
if [ -n "${RUN_SECONDS:-}" ]; then
  sleep "$RUN_SECONDS"
else
  wait "$worker"
fi
