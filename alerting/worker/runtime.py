"""Per-process wiring: settings, the Redis client, rules with hot reload, open datasources, and the
evaluator with its sink and history.

Celery's prefork pool forks workers; everything here is created lazily in the process that
uses it, so no socket, thread pool or database engine is shared across a fork.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from alerting import durable, redisconn
from alerting.config.settings import DatasourceConfig, Settings, default_datasources, load_datasources
from alerting.errors import AlertingError, ConfigError, DatasourceError
from alerting.notify.ack_sources import build_ack_sources
from alerting.notify.acks import AckSource
from alerting.notify.kvstore import STORE_KEY, RedisStore
from alerting.notify.live import RoutingConfig
from alerting.ops import metrics
from alerting.ops.history import History, HistoryWriter, open_history, set_history
from alerting.ops.logs import get_logger
from alerting.remotewrite import RemoteWriter, Series
from alerting.rules.loader import load_file_groups, rule_files
from alerting.rules.model import AnyRule, Group
from alerting.rules.state import StateStore
from alerting.rules.tick import Evaluator, Sink
from alerting.sources import Source
from alerting.worker.compose import default_routing_config, load_routing_config, open_source, warn_changed
from alerting.worker.flusher import Flusher
from alerting.worker.sink import WorkerSink

log = get_logger(__name__)


class RuleRegistry:
    """Rule files with hot reload: a file that changed is reparsed; a broken file keeps its last
    good groups and reports its problems; a deleted file's groups disappear."""

    def __init__(
        self,
        paths: tuple[str, ...],
        default_interval: float,
        announce: Callable[[str], bool] | None = None,
    ) -> None:
        self.paths = paths
        self.default_interval = default_interval
        # Whether this process is the first to see a version of the rules (every worker process
        # keeps a registry); only the first says so at INFO.
        self.announce = announce or (lambda _version: True)
        self._files: dict[str, tuple[float, list[Group]]] = {}
        self.problems: list[str] = []
        self.last_reload_ok = True
        self._lock = threading.Lock()

    def groups(self) -> list[Group]:
        with self._lock:
            self._refresh()
            return [g for _, groups in sorted(self._files.items()) for g in groups[1]]

    def group(self, group_id: str) -> Group | None:
        return next((g for g in self.groups() if g.id == group_id), None)

    def _log_loaded(self) -> None:
        groups = [g for _, file_groups in self._files.values() for g in file_groups]
        rules = sum(len(g.rules) for g in groups)
        version = hashlib.sha256(repr(sorted((n, m) for n, (m, _) in self._files.items())).encode())
        first = self.announce(version.hexdigest()[:16])
        (log.info if first else log.debug)(
            "rules.loaded",
            msg=f"loaded {rules} rules in {len(groups)} groups from {len(self._files)} files",
            files=len(self._files),
            groups=len(groups),
            rules=rules,
        )

    def _refresh(self) -> None:
        files, missing = rule_files(self.paths)
        problems = [str(p) for p in missing]
        seen = set()
        ok = not missing
        changed = False
        for path in files:
            name = str(path)
            seen.add(name)
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            known = self._files.get(name)
            if known and known[0] == mtime:
                continue
            groups, file_problems, warnings = load_file_groups(path, self.default_interval)
            for warning in warnings:
                log.warning("rules.recording_skipped", msg=warning)
            if file_problems:
                ok = False
                problems.extend(str(p) for p in file_problems)
                for problem in file_problems:
                    log.error("rules.invalid", msg=str(problem), kept_previous=known is not None)
                if known:
                    # Keep serving the last good version, but remember the mtime so we do
                    # not log the same problems on every tick.
                    self._files[name] = (mtime, known[1])
                else:
                    self._files[name] = (mtime, [])
                continue
            self._files[name] = (mtime, groups)
            changed = True
            log.debug(
                "rules.file_loaded",
                msg=f"loaded {sum(len(g.rules) for g in groups)} rules in {len(groups)} groups from {name}",
                file=name,
            )
        for problem in missing:
            if str(problem) not in self.problems:
                log.error("rules.missing", msg=str(problem))
        for name in list(self._files):
            if name not in seen:
                log.info("rules.removed", msg=f"{name} is gone; its groups stop", file=name)
                del self._files[name]
                changed = True
        if changed:
            self._log_loaded()
        if problems or ok:
            self.problems = problems
            self.last_reload_ok = ok


class Runtime:
    """Everything a task needs, built once per process."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.prefix = self.settings.prefix
        self.redis = redisconn.connect(
            self.settings.redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
        )
        durable.configure(self.settings.redis_wait_timeout)
        self.store = StateStore(self.redis, self.prefix)
        self.rules = RuleRegistry(self.settings.rules, self.settings.default_interval, self._first_to_see)
        self._sources: dict[str, Source] = {}
        self._datasources: dict[str, DatasourceConfig] | None = None
        self._routing: RoutingConfig | None = None
        self._routing_mtime: int | None = None
        self._routing_lock = threading.Lock()
        self.config_ok = True
        self._lock = threading.Lock()
        self._history: HistoryWriter | None = None
        self._evaluator: Evaluator | None = None
        self._ack_sources: tuple[RoutingConfig, list[AckSource]] | None = None
        self._flusher: Flusher | None = None
        self._writer: RemoteWriter | None = None

    def _first_to_see(self, version: str, ttl: int = 3600) -> bool:
        """True in the one process (of all sharing this Redis prefix) first to load ``version``
        within ``ttl`` seconds."""
        try:
            return bool(self.redis.set(self.store.key("log", f"rules:{version}"), 1, nx=True, ex=ttl))
        except redis.RedisError:
            return True

    def datasource_configs(self) -> dict[str, DatasourceConfig]:
        if self._datasources is None:
            try:
                self._datasources = load_datasources(self.settings)
            except ConfigError as exc:
                log.error("config.invalid", msg=str(exc))
                self._datasources = default_datasources(self.settings)
        return self._datasources

    def source(self, name: str, kind: str) -> Source:
        """The open datasource ``name``; raises DatasourceError if unknown or of another kind."""
        with self._lock:
            if name in self._sources:
                return self._sources[name]
            config = self.datasource_configs().get(name)
            if config is None:
                raise DatasourceError(f'no datasource named "{name}" in alerting.yml', name)
            if config.kind != kind:
                raise DatasourceError(f'datasource "{name}" is {config.kind}, rule needs {kind}', name)
            source = open_source(config)
            self._sources[name] = source
            return source

    def routing(self) -> RoutingConfig:
        """The routing of alerting.yml, reloaded when the file changes; a broken file keeps the
        last good version (or the console-only default if none loaded yet)."""
        path = Path(self.settings.config_path)
        try:
            mtime: int | None = path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if self._routing is not None and mtime == self._routing_mtime:
            return self._routing
        # The flusher's threads and the task thread may all notice a change at once: one loads it.
        with self._routing_lock:
            if self._routing is not None and mtime == self._routing_mtime:
                return self._routing
            return self._load_routing(path, mtime)

    def _load_routing(self, path: Path, mtime: int | None) -> RoutingConfig:
        self._routing_mtime = mtime
        if mtime is None:
            # Said once by whichever process of the worker (and of its siblings) starts first, not
            # by every pool process; a worker started again a minute later says it again.
            if self._routing is None and self._first_to_see(f"config-missing:{path}", ttl=60):
                log.warning("config.missing", msg=f"{path} not found: every alert goes to the console")
            self._routing = default_routing_config()
            return self._routing
        store = RedisStore(self.redis, self.store.key("notify", ""))
        try:
            previous = self._routing
            self._routing = load_routing_config(
                path, extra_global={STORE_KEY: store}, env=self.settings.environ
            )
            self.config_ok = True
            # Every process loads it once at start (the start-up summary says what it holds); a
            # reload is news.
            if previous is None:
                log.debug("config.loaded", msg=f"loaded routing from {path}")
            else:
                log.info("config.loaded", msg=f"reloaded routing from {path}")
            warn_changed(previous, self._routing)
        except ConfigError as exc:
            self.config_ok = False
            log.error("config.invalid", msg=str(exc), kept_previous=self._routing is not None)
            if self._routing is None:
                self._routing = default_routing_config()
        return self._routing

    def ack_sources(self) -> list[AckSource]:
        """Where acknowledgements made outside the worker are read (Slack reactions, PagerDuty
        incidents), built from the current routing."""
        config = self.routing()
        if self._ack_sources is None or self._ack_sources[0] is not config:
            self._ack_sources = (config, build_ack_sources(config, self.settings.environ))
        return self._ack_sources[1]

    # --- the tick -------------------------------------------------------------------------------
    @property
    def history(self) -> HistoryWriter:
        """This process's history, built on first use and installed as the module default, so the
        delivery task's writes share its connections."""
        if self._history is None:
            self._history = open_history(self.settings)
            if isinstance(self._history, History):
                set_history(self._history)
        return self._history

    @property
    def evaluator(self) -> Evaluator:
        """The worker's evaluator: claims slots as this process, measures queries, and hands every
        tick to the worker's sink."""
        if self._evaluator is None:
            sink = WorkerSink(
                self.redis,
                self.prefix,
                routing=self.routing,
                history=lambda: self.history,
                datasources=self.datasource_configs,
                external_url=self.settings.external_url,
            )
            owner = f"{os.uname().nodename}:{os.getpid()}"
            self._evaluator = self.build_evaluator(owner=owner, sink=sink, measured=True)
        return self._evaluator

    def build_evaluator(self, *, owner: str, sink: Sink | None = None, measured: bool = False) -> Evaluator:
        """An evaluator over this runtime's state store and datasources, with the settings' query
        concurrency, outage tolerance and external URL. ``measured`` counts queries in metrics."""

        def source_for(rule: AnyRule) -> Source:
            source = self.source(rule.datasource, rule.kind)
            return metrics.timed(source) if measured else source

        return Evaluator(
            self.store,
            source_for,
            sink,
            owner=owner,
            concurrency=self.settings.query_concurrency,
            outage_tolerance=self.settings.outage_tolerance,
            external_url=self.settings.external_url,
            prometheus=self.prometheus(),
            writer=_FollowingWriter(self),
            alert_series=self.settings.write_alert_series,
        )

    def remote_writer(self) -> RemoteWriter:
        """The writer to alerting.yml's ``remote_write`` targets; rebuilt when they change (what
        the previous one still had queued is given a moment to go out)."""
        targets = tuple(self.routing().remote_write)
        with self._lock:
            previous = self._writer
            if previous is not None and previous.targets == targets:
                return previous
            self._writer = RemoteWriter(targets, redis=self.redis, prefix=self.prefix)
        if previous is not None:
            previous.flush(timeout=5)
            previous.close()
        return self._writer

    def flush_writes(self, timeout: float) -> None:
        """Send what this process's remote writer still holds (if it has one), up to ``timeout``."""
        writer = self._writer
        if writer is not None and not writer.flush(timeout=timeout):
            log.warning(
                "remote_write.unflushed",
                msg=f"recorded samples still queued after {timeout:g}s at shutdown are dropped",
            )

    def prometheus(self) -> Source | None:
        """The datasource named ``prometheus``, which templates' ``query`` asks; None without one."""
        try:
            return self.source("prometheus", "promql")
        except AlertingError:
            return None

    def flusher(self) -> Flusher:
        """This process's flusher and delivery threads (not started: the worker starts them)."""
        with self._lock:
            if self._flusher is None:
                self._flusher = Flusher(self)
            return self._flusher

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.stop()
            self._flusher = None
        if self._evaluator is not None:
            self._evaluator.close()
            self._evaluator = None
        if self._writer is not None:
            self.flush_writes(timeout=10)
            self._writer.close()
            self._writer = None
        if self._history is not None:
            self._history.close()
        for source in self._sources.values():
            source.close()
        self._sources.clear()


class _FollowingWriter:
    """The evaluator's writer: whatever ``remote_write`` says now (it may change on reload). A
    rule waiting for what its group recorded waits up to the targets' ``remote_timeout``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def write(self, series: Sequence[Series], *, wait: float | None = None) -> bool:
        writer = self.runtime.remote_writer()
        if wait is not None:
            wait = max((t.remote_timeout for t in writer.targets), default=wait)
        return writer.write(series, wait=wait)


_runtime: Runtime | None = None
_runtime_pid: int | None = None


def get_runtime() -> Runtime:
    """This process's runtime (a forked child builds its own)."""
    global _runtime, _runtime_pid
    if _runtime is None or _runtime_pid != os.getpid():
        _runtime, _runtime_pid = Runtime(), os.getpid()
    return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, CLI with explicit settings)."""
    global _runtime, _runtime_pid
    _runtime, _runtime_pid = runtime, os.getpid() if runtime else None


def rules_root_exists(settings: Settings) -> bool:
    return any(Path(p).exists() for p in settings.rules)
