#!/usr/bin/env bash
# The demo: a small app exposing the specs' metrics, its database, a local Prometheus scraping it,
# and the worker on the shipped rule pack plus fast demo rules. Unless DEMO_SCENARIO=0, it then
# switches a few faults on and, 45 s later, off again, so alerts go pending -> firing -> resolved.
# RUN_SECONDS=N stops everything after N seconds (used by the test of this command).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
scripts/services.sh
mkdir -p var
export DATABASE_URL=${DATABASE_URL:-sqlite:///var/demo.db}
export PROMETHEUS_URL=${PROMETHEUS_URL:-http://127.0.0.1:9090}
export ALERTING_RULES=${ALERTING_RULES:-rules,demo/rules}
export ALERTING_EVALUATION_INTERVAL=${ALERTING_EVALUATION_INTERVAL:-10s}
export LOG_FORMAT=${LOG_FORMAT:-console}
export DEMO_BROKER_URL=${DEMO_BROKER_URL:-${ALERTING_REDIS_URL:-redis://127.0.0.1:6379/0}}
demo_url=http://127.0.0.1:${DEMO_PORT:-8000}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

.venv/bin/python -m demo.seed
.venv/bin/python -m demo.app >var/demo-app.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "$demo_url/metrics" >/dev/null 2>&1 && break; sleep 0.1; done

if ! curl -fsS "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1; then
  port=${PROMETHEUS_URL##*:}; port=${port%%/*}
  sed "s/127.0.0.1:8000/${demo_url#http://}/" demo/prometheus.yml > var/demo-prometheus.yml
  echo "demo: starting Prometheus on 127.0.0.1:$port, scraping $demo_url" >&2
  rm -rf var/demo-prometheus
  prometheus --config.file=var/demo-prometheus.yml --storage.tsdb.path=var/demo-prometheus \
    --web.listen-address="127.0.0.1:$port" >var/demo-prometheus.log 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -fsS "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 && break; sleep 0.2; done
fi

.venv/bin/celery -A alerting worker -B --loglevel=INFO --without-gossip --without-mingle \
  --schedule=var/demo-beat-schedule &
worker=$!
pids+=("$worker")

if [ "${DEMO_SCENARIO:-1}" != 0 ]; then
  (
    sleep 10
    for fault in errors_5xx overspend stuck_approvals queue_backlog; do
      curl -fsS -X POST "$demo_url/faults/$fault" >/dev/null && echo "demo: fault $fault on" >&2
    done
    sleep 45
    curl -fsS -X DELETE "$demo_url/faults" >/dev/null && echo "demo: all faults off" >&2
  ) &
  pids+=($!)
fi

if [ -n "${RUN_SECONDS:-}" ]; then
  sleep "$RUN_SECONDS"
else
  wait "$worker"
fi
