"""Celery rules against a real Redis broker and a real ``celery worker`` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

import alerting.sources.celery as celery_source
from alerting.config.settings import Settings, load_datasources
from alerting.errors import ConfigError, DatasourceError, Position, QueryError, RuleFileError
from alerting.rules.loader import load_file_groups
from alerting.sources.celery import CeleryCheck, CelerySource, check_celery
from tests.support.net import REDIS_URL, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Broker:
    """A slice of the shared Redis no other run touches: a key prefix and a control exchange."""

    prefix: str
    control: str

    @property
    def config(self) -> dict:
        return {
            "broker_url": REDIS_URL,
            "broker_transport_options": {"global_keyprefix": self.prefix},
            "control_exchange": self.control,
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            "TEST_CELERY_BROKER": REDIS_URL,
            "TEST_CELERY_PREFIX": self.prefix,
            "TEST_CELERY_CONTROL": self.control,
        }


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Broker]:
    token = uuid.uuid4().hex[:10]
    found = Broker(prefix=f"alerting-test-{token}:", control=f"alerting-test-{token}")
    for key, value in found.env.items():
        monkeypatch.setenv(key, value)
    yield found
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{found.prefix}*", count=500):
        client.delete(key)
    client.close()


@pytest.fixture
def source(broker: Broker) -> Iterator[CelerySource]:
    src = CelerySource("celery", broker.config)
    yield src
    src.close()


def publisher(broker: Broker):  # noqa: ANN201 - a Celery app, built with this test's env
    from celery import Celery

    app = Celery("publisher", broker=REDIS_URL, set_as_current=False)
    app.conf.update(broker_transport_options={"global_keyprefix": broker.prefix})
    return app


def measure(spec: dict) -> CeleryCheck:
    return check_celery(spec, Position("rules.yml", 1, 1))


def test_queue_length_counts_every_pending_message_including_priority_sub_queues(
    broker: Broker, source: CelerySource
) -> None:
    app = publisher(broker)
    for priority in (None, 0, 2, 5, 5, 8, 9):
        app.send_task("tests.noop", queue="reports", priority=priority)
    for _ in range(2):
        app.send_task("tests.noop", queue="emails")
    app.close()
    samples = source.query(
        measure({"measure": "queue_length", "queues": ["reports", "emails", "idle"]}), time.time()
    )
    assert {s.labels["queue"]: s.value for s in samples} == {"reports": 7.0, "emails": 2.0, "idle": 0.0}
    assert [dict(s.labels) for s in samples] == [{"queue": "reports"}, {"queue": "emails"}, {"queue": "idle"}]


def test_queue_length_defaults_to_the_celery_queue(broker: Broker, source: CelerySource) -> None:
    app = publisher(broker)
    for _ in range(3):
        app.send_task("tests.noop")
    app.close()
    [sample] = source.query(measure({"measure": "queue_length"}), time.time())
    assert (dict(sample.labels), sample.value) == ({"queue": "celery"}, 3.0)


def test_a_queue_name_that_is_another_kind_of_key_is_a_rule_error(
    broker: Broker, source: CelerySource
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.set(f"{broker.prefix}settings", "not a queue")
    client.close()
    with pytest.raises(
        QueryError,
        match="^broker refused the request: WRONGTYPE Operation against a key holding the wrong kind of",
    ):
        source.query(measure({"measure": "queue_length", "queues": ["settings"]}), time.time())


def test_workers_counts_a_live_worker_and_none_after_it_stops(broker: Broker, source: CelerySource) -> None:
    workers = measure({"measure": "workers", "timeout": "1s"})
    assert source.query(workers, time.time()) == [celery_source.Sample({}, 0.0)]
    queue = "work-" + broker.control
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.support.celery_app", "worker", "--pool=solo"]
        + ["-Q", queue, "-n", f"{broker.control}@%h", "--without-gossip", "--without-mingle"]
        + ["--without-heartbeat", "--loglevel=WARNING"],
        cwd=ROOT,
        env={**os.environ, **broker.env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while source.query(workers, time.time())[0].value == 0:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the worker never answered a ping"
        assert source.query(workers, time.time())[0].value == 1
        consuming = measure({"measure": "workers", "queues": [queue, "other"]})
        assert source.query(consuming, time.time())[0].value == 1
        elsewhere = measure({"measure": "workers", "queues": ["other"]})
        assert source.query(elsewhere, time.time())[0].value == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    assert source.query(workers, time.time())[0].value == 0


@pytest.mark.parametrize("spec", [{"measure": "workers"}, {"measure": "queue_length", "queues": ["celery"]}])
def test_unreachable_broker_is_a_datasource_error(spec: dict) -> None:
    src = CelerySource("jobs", {"broker_url": f"redis://:hunter2@127.0.0.1:{free_port()}/0"})
    with pytest.raises(DatasourceError, match="cannot reach broker") as info:
        src.query(measure(spec), time.time())
    assert info.value.datasource == "jobs"
    assert "hunter2" not in str(info.value)


def test_broker_url_defaults_to_the_environment(tmp_path: Path) -> None:
    # The environment is read by Settings; a celery datasource without broker_url gets the worker's.
    config = tmp_path / "alerting.yml"
    config.write_text("datasources:\n  jobs: {type: celery}\n")

    def url(env: dict[str, str]) -> str:
        settings = Settings.from_env({"ALERTING_CONFIG": str(config), **env})
        options = load_datasources(settings)["jobs"].options
        return CelerySource("jobs", options).url

    assert url({"ALERTING_REDIS_URL": "redis://redis.internal:6379/3"}) == "redis://redis.internal:6379/3"
    both = {
        "ALERTING_REDIS_URL": "redis://redis.internal:6379/3",
        "CELERY_BROKER_URL": "redis://broker.internal:6379/1",
    }
    assert url(both) == "redis://broker.internal:6379/1"
    assert url({}) == "redis://localhost:6379/0"
    assert CelerySource("celery", {}).url == "redis://localhost:6379/0"


def test_the_module_uses_the_real_celery_library() -> None:
    assert celery_source.celery.__name__ == "celery"
    assert hasattr(celery_source.celery, "Celery")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"broker": "redis://x"}, 'unknown field "broker" (did you mean "broker_url"?)'),
        ({"broker_url": "nosuch://x"}, "No such transport: nosuch"),
        ({"broker_url": "redis://x", "connect_timeout": "soon"}, "connect_timeout"),
        ({"broker_url": "redis://x", "broker_transport_options": ["a"]}, "must be a mapping"),
    ],
)
def test_bad_celery_datasource_settings_are_config_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match='datasource "celery"') as info:
        CelerySource("celery", config)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"measure": "queue_length"}, CeleryCheck("queue_length", ("celery",))),
        ({"measure": "queue_length", "queues": "emails"}, CeleryCheck("queue_length", ("emails",))),
        ({"measure": "queue_length", "queues": ["a", "b"]}, CeleryCheck("queue_length", ("a", "b"))),
        ({"measure": "workers"}, CeleryCheck("workers")),
        ({"measure": "workers", "queues": ["a"], "timeout": "2s"}, CeleryCheck("workers", ("a",), 2.0)),
    ],
)
def test_celery_spec_is_normalised(spec: dict, expected: CeleryCheck) -> None:
    assert measure(spec) == expected


RULE_FILE = """\
groups:
  - name: jobs
    rules:
      - alert: NoWorkers
        celery:
          {spec}
"""


@pytest.mark.parametrize(
    ("spec", "col", "message"),
    [
        ("measure: queue_size", 20, "celery measure must be queue_length or workers, got 'queue_size'"),
        ("queues: [a]", 11, "celery measure must be queue_length or workers, got nothing"),
        ("{measure: workers, queue: [a]}", 30, 'unknown field "queue" in celery (did you mean "queues"?)'),
        ("{measure: queue_length, queues: []}", 43, "celery queues must be a list of queue names"),
        ("{measure: queue_length, queues: [a, a]}", 43, "lists a queue twice"),
        ("{measure: queue_length, timeout: 1s}", 44, "timeout applies to measure: workers only"),
        ("{measure: workers, timeout: 1m}", 39, "at most 30s"),
        ("{measure: workers, timeout: 5}", 39, 'celery timeout: not a valid duration string: "5"'),
    ],
)
def test_bad_celery_spec_is_reported_at_its_position(
    tmp_path: Path, spec: str, col: int, message: str
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULE_FILE.format(spec=spec))
    _, problems, _ = load_file_groups(path)
    [problem] = problems
    assert problem.pos == Position(str(path), 6, col)
    assert message in problem.message


def test_celery_rule_loads_with_its_kind_and_default_datasource(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(RULE_FILE.format(spec="{measure: queue_length, queues: [celery, emails]}"))
    [group], problems, _ = load_file_groups(path)
    assert problems == []
    [rule] = group.rules
    assert (rule.kind, rule.datasource) == ("celery", "celery")
    assert rule.query == CeleryCheck("queue_length", ("celery", "emails"))
    assert rule.query_text == "measure=queue_length queues=['celery', 'emails']"


def test_celery_spec_must_be_a_mapping() -> None:
    with pytest.raises(RuleFileError, match="celery must be a mapping"):
        check_celery("workers", Position("rules.yml", 3, 5))
