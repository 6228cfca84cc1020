# Every target is a thin wrapper over scripts/ so the README's commands and CI run the same code.
.PHONY: setup test test-fast run demo check lint

setup:
	scripts/venv.sh

test:
	scripts/test.sh

# The pure tests only (no Redis, servers or subprocesses): seconds, for the edit-test loop.
test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m pure

run:
	scripts/run.sh

demo:
	scripts/demo.sh

check: setup
	.venv/bin/alerting check rules/ demo/rules

lint: setup
	.venv/bin/ruff check alerting tasks tests bench
	.venv/bin/ruff format --check alerting tasks tests bench
