"""A Celery app for tests, isolated by the environment: its own key prefix and control exchange.

``celery -A tests.support.celery_app worker`` starts a real worker on it; tests publish to it
without one. Nothing here is shared with another test run on the same Redis.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER = os.environ.get("TEST_CELERY_BROKER", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("TEST_CELERY_PREFIX", "alerting-test:")
CONTROL = os.environ.get("TEST_CELERY_CONTROL", "alerting-test")

app = Celery("alerting-test", broker=BROKER, set_as_current=False)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    control_exchange=CONTROL,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="tests.noop")
def noop() -> None:
    """Never run by the tests that count queued messages: no worker consumes their queue."""
