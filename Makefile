# Every target is a thin wrapper over scripts/ so the README's commands and CI run the same code.
.PHONY: setup test run demo check lint

setup:
	scripts/venv.sh

test:
	scripts/test.sh

run:
	scripts/run.sh

demo:
	scripts/demo.sh

check: setup
	.venv/bin/alerting check rules/ demo/rules

lint: setup
	.venv/bin/ruff check alerting tasks tests bench
	.venv/bin/ruff format --check alerting tasks tests bench
