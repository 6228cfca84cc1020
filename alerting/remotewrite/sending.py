"""One remote_write target's requests, whichever queue feeds them: relabeling, the HTTP client, and
sending one batch until the target settles it (retries, backoff, ``Retry-After``, refusals).

The in-memory queue (:mod:`alerting.remotewrite.writer`) and the queue shared in Redis
(:mod:`alerting.remotewrite.shared`) both send through :class:`Target`, so the two mean the same
thing by a retry, a refusal or a sample too old.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import httpx

from alerting import __version__
from alerting.ops import metrics
from alerting.ops.logs import get_logger
from alerting.remotewrite.config import RemoteWriteTarget
from alerting.remotewrite.relabel import relabel
from alerting.remotewrite.series import Labels, Series
from alerting.remotewrite.wire import HEADERS, encode
from alerting.transport import TLSFilesError, new_client, retry_after

__all__ = ["Delivered", "Queued", "Target", "accepted", "refused"]

log = get_logger(__name__)

# Label sets relabeled per target, remembered so a series written every tick is relabeled once.
_RELABEL_CACHE_SIZE = 10_000
# How much of a target's refusal is logged.
_ANSWER_CHARS = 512


class _Sample(Protocol):
    @property
    def labels(self) -> Labels: ...
    @property
    def value(self) -> float: ...
    @property
    def timestamp_ms(self) -> int: ...


S = TypeVar("S", bound=_Sample)


@dataclass(frozen=True)
class Delivered(Generic[S]):
    """How the target settled a batch: what it accepted and what will never reach it."""

    accepted: list[S]
    dropped: list[S]


@dataclass(frozen=True)
class Queued:
    """What a queue did with one write: ``complete`` when every sample was queued; ``wait(deadline)``
    blocks until the target settled them (or ``time.monotonic()`` passes ``deadline``) and says
    whether it accepted all of them."""

    complete: bool
    wait: Callable[[float], bool]


def accepted(_: float) -> bool:
    """The wait of a write with nothing to wait for."""
    return True


def refused(_: float) -> bool:
    """The wait of a write whose samples were not queued."""
    return False


class Target:
    """A target's relabeling and requests, shared by every queue of one process."""

    def __init__(self, target: RemoteWriteTarget) -> None:
        self.target = target
        self.remote = target.remote
        self._relabeled: dict[Labels, Labels | None] = {}

    def labels_for(self, labels: Labels) -> Labels | None:
        """``labels`` after the target's write_relabel_configs (None: not sent there)."""
        configs = self.target.write_relabel_configs
        if not configs:
            return labels
        try:
            return self._relabeled[labels]
        except KeyError:  # not seen yet (or the cache was just cleared by another thread)
            pass
        out = relabel(dict(labels), configs)
        result = tuple(sorted(out.items())) if out else None
        if len(self._relabeled) >= _RELABEL_CACHE_SIZE:
            self._relabeled.clear()
        self._relabeled[labels] = result
        return result

    def relabeled(self, series: Sequence[Series]) -> list[Series]:
        """``series`` as this target gets them (relabeled, the dropped ones left out)."""
        out = []
        for one in series:
            labels = self.labels_for(one.labels)
            if labels is not None:
                out.append(one if labels is one.labels else Series(labels, one.value, one.timestamp_ms))
        return out

    def client(self) -> httpx.Client | None:
        """A client for the sender thread; None (logged) when its TLS files cannot be read."""
        try:
            return new_client(
                self.target.http,
                httpx.Timeout(self.target.remote_timeout),
                headers={**dict(self.target.headers), **HEADERS, "User-Agent": f"alerting/{__version__}"},
            )
        except (TLSFilesError, httpx.HTTPError) as exc:
            log.error(
                "remote_write.setup_failed",
                msg=f"remote_write {self.remote}: cannot build its HTTP client: {exc}",
                remote=self.remote,
            )
            return None

    def refused_new(self, reason: str, count: int) -> None:
        """New samples a queue had no room for (``queue_full``), or could not keep."""
        metrics.observe_remote_write_dropped(self.remote, reason, count)
        if reason == "queue_full":
            log.warning(
                "remote_write.queue_full",
                msg=f"remote_write {self.remote}: queue full ({self.target.queue.capacity} samples),"
                f" {count} new samples dropped",
                remote=self.remote,
                dropped=count,
            )

    def _too_old(self, batch: list[S], dropped: list[S]) -> list[S]:
        """``batch`` without samples past ``sample_age_limit`` (those go to ``dropped``, counted)."""
        limit = self.target.queue.sample_age_limit
        if not limit:
            return batch
        oldest_ms = time.time() * 1000 - limit * 1000
        fresh = [e for e in batch if e.timestamp_ms >= oldest_ms]
        if len(fresh) < len(batch):
            old = [e for e in batch if e.timestamp_ms < oldest_ms]
            dropped.extend(old)
            metrics.observe_remote_write_dropped(self.remote, "too_old", len(old))
        return fresh

    def deliver(
        self,
        client: httpx.Client,
        batch: list[S],
        *,
        pause: Callable[[float], bool],
        proceed: Callable[[], bool] = lambda: True,
    ) -> Delivered[S] | None:
        """Send ``batch`` until the target accepts it or refuses it for good.

        Between attempts ``pause(seconds)`` waits (False: stop now); before each attempt
        ``proceed()`` says whether this sender may still send. Either saying no returns None: the
        batch is not settled, and what becomes of it is the caller's to decide.
        """
        q = self.target.queue
        backoff = q.min_backoff
        dropped: list[S] = []
        while True:
            batch = self._too_old(batch, dropped)
            if not batch:
                return Delivered([], dropped)
            if not proceed():
                return None
            body = encode(Series(e.labels, e.value, e.timestamp_ms) for e in batch)
            wait: float | None = None
            try:
                response = client.post(self.target.url, content=body)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    metrics.observe_remote_write_sent(self.remote, len(batch))
                    return Delivered(batch, dropped)
                status = response.status_code
                problem = f"HTTP {status}: {response.text[:_ANSWER_CHARS]}"
                if status < 500 and not (status == 429 and q.retry_on_http_429):
                    metrics.observe_remote_write_dropped(self.remote, "rejected", len(batch))
                    log.warning(
                        "remote_write.rejected",
                        msg=f"remote_write {self.remote} ({self.target.shown_url}) refused"
                        f" {len(batch)} samples, which are dropped: {problem}",
                        remote=self.remote,
                        status=status,
                        samples=len(batch),
                    )
                    return Delivered([], dropped + batch)
                wait = retry_after(response.headers)
            if wait is None:
                wait = backoff
                backoff = min(max(backoff * 2, q.min_backoff), q.max_backoff)
            log.info(
                "remote_write.retry",
                msg=f"remote_write {self.remote} ({self.target.shown_url}): {problem};"
                f" sending {len(batch)} samples again in {wait:.3g}s",
                remote=self.remote,
                samples=len(batch),
            )
            metrics.observe_remote_write_retry(self.remote)
            if not pause(wait):
                return None
