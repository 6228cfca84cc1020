#!/usr/bin/env bash
# The test command: install, start the services the tests use, lint, run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
scripts/services.sh
.venv/bin/ruff check alerting tasks tests bench
.venv/bin/ruff format --check alerting tasks tests bench
.venv/bin/mypy alerting
.venv/bin/alerting check rules/ demo/rules alerting.yml
# Test files run side by side (PYTEST_WORKERS processes, one file per process at a time): most of the
# suite's time is spent waiting on real workers, Prometheus and timers, not on the CPU.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-4}" --dist loadfile "$@"
