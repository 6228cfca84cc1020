"""What the notification pipeline's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.routing_harness import Harness, load_config
from tests.support.routing_redis import isolated_redis
from tests.support.webhook import WebhookRecorder


@pytest.fixture
def env(request: pytest.FixtureRequest, tmp_path: Path, recorder: WebhookRecorder) -> Iterator[Harness]:
    """The pipeline on a Redis prefix of its own, routed by the test module's ``CONFIG`` (whose
    ``{url}`` is the webhook recorder's)."""
    with isolated_redis() as (client, prefix):
        yield Harness(client, prefix, load_config(tmp_path, request.module.CONFIG, url=recorder.url))
