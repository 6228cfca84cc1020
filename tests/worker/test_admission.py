"""How many deliveries a process runs at once: ``steady`` while they finish promptly or keep the
process busy, more (up to the pool's size) while they wait on receivers with the process idle."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from alerting.worker.admission import Admission
from tests.support.net import wait_until


class Sends:
    """Stand-in deliveries that count how many run at once; each waits for ``gate`` if given."""

    def __init__(self, gate: threading.Event | None = None, work: float = 0.0) -> None:
        self.gate = gate
        self.work = work  # seconds of CPU each one spends
        self.done: list[int] = []
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def __call__(self, item: int) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            if self.gate is not None:
                self.gate.wait(30)
            spent = time.thread_time()
            while time.thread_time() - spent < self.work:
                pass
            if item < 0:
                raise ValueError("a delivery that crashed")
        finally:
            with self._lock:
                self.now -= 1
                self.done.append(item)


def submitted(pool: ThreadPoolExecutor, items: Iterable[int], sends: Sends, **options: Any) -> Admission[int]:
    """An admission of ``options`` running ``sends``, with ``items`` submitted to it."""
    admission = Admission(pool, sends, **options)
    for item in items:
        admission.submit(item)
    return admission


def gated(
    pool: ThreadPoolExecutor, count: int, **options: Any
) -> tuple[threading.Event, Sends, Admission[int]]:
    """``count`` deliveries held until the returned gate opens, submitted to an admission of
    ``options``."""
    gate = threading.Event()
    sends = Sends(gate)
    return gate, sends, submitted(pool, range(count), sends, **options)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(6)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


def test_prompt_deliveries_run_a_few_at_a_time_and_all_of_them_run(pool: ThreadPoolExecutor) -> None:
    sends = Sends()
    admission = submitted(pool, range(200), sends, steady=2, most=6, patience=30.0)
    wait_until(lambda: len(sends.done) == 200, timeout=30, what="every delivery")
    assert sorted(sends.done) == list(range(200))
    assert sends.most <= 2
    wait_until(lambda: admission.running == 0, timeout=10, what="the slots to be given back")


@pytest.mark.parametrize(
    ("patience", "under_way"),
    [(30.0, 2), (0.05, 6)],
    ids=["before their patience, the rest wait", "after it, up to the most"],
)
def test_deliveries_kept_waiting_with_the_process_idle_open_more_slots_after_their_patience(
    pool: ThreadPoolExecutor, patience: float, under_way: int
) -> None:
    gate, sends, admission = gated(pool, 10, steady=2, most=6, patience=patience)
    wait_until(lambda: sends.now == under_way, timeout=10, what=f"{under_way} deliveries under way at once")
    assert admission.waiting == 10 - under_way
    gate.set()
    wait_until(lambda: len(sends.done) == 10, timeout=30, what="every delivery")
    assert sends.most == under_way


def test_after_their_patience_every_delivery_waiting_starts_at_once(pool: ThreadPoolExecutor) -> None:
    """A storm's groups come due together: once the first sends are seen waiting on their receiver,
    the rest all start, not twice as many per look."""
    gate, sends, _ = gated(pool, 6, steady=1, most=6, patience=1.0)
    wait_until(lambda: sends.now > 1, timeout=10, what="more than one delivery under way")
    # The next look is a second away: all six are under way well before it.
    wait_until(lambda: sends.now == 6, timeout=0.5, what="every delivery under way")
    gate.set()
    wait_until(lambda: len(sends.done) == 6, timeout=10, what="every delivery")


def test_while_deliveries_go_on_the_next_ones_start_at_once_then_steady_again_once_idle(
    pool: ThreadPoolExecutor,
) -> None:
    gate, sends, admission = gated(pool, 3, steady=2, most=6, patience=1.0)
    wait_until(lambda: sends.now == 3, timeout=10, what="three deliveries under way")
    admission.submit(3)  # the next flush's: more may run now (four), so it does not wait a second
    wait_until(lambda: sends.now == 4, timeout=0.5, what="the fourth delivery under way")
    gate.set()
    wait_until(lambda: len(sends.done) == 4 and admission.running == 0, timeout=10, what="every delivery")
    gate.clear()
    for item in range(4, 8):  # a new episode, on an idle process: steady again
        admission.submit(item)
    wait_until(lambda: sends.now == 2, timeout=10, what="two deliveries under way")
    assert admission.waiting == 2
    gate.set()
    wait_until(lambda: len(sends.done) == 8, timeout=10, what="every delivery")


def test_once_the_deliveries_running_keep_the_process_busy_the_next_ones_wait(
    pool: ThreadPoolExecutor,
) -> None:
    gate = threading.Event()
    sends = Sends(gate, work=1.0)  # kept waiting by the receiver, then a second of CPU each
    admission = submitted(pool, range(3), sends, steady=1, most=6, patience=0.1, busy=0.2)
    wait_until(lambda: sends.now == 3, timeout=10, what="three deliveries under way")
    gate.set()  # all three now spin: the next look finds the process busy
    wait_until(lambda: admission.limit == 1, timeout=10, what="the limit back to steady")
    admission.submit(3)
    assert admission.waiting == 1
    wait_until(lambda: len(sends.done) == 4, timeout=60, what="every delivery")


def test_deliveries_that_keep_the_process_busy_open_no_more_slots(pool: ThreadPoolExecutor) -> None:
    """More threads cannot make CPU-bound work go faster: they would only take turns."""
    sends = Sends(work=0.2)
    # Busy from a fifth of a CPU on: two spinning threads get that much on a loaded machine too.
    submitted(pool, range(8), sends, steady=2, most=6, patience=0.05, busy=0.2)
    wait_until(lambda: len(sends.done) == 8, timeout=60, what="every delivery")
    assert sends.most == 2


def test_a_busy_process_keeps_steady_deliveries_at_work_besides_those_held_up_by_receivers(
    pool: ThreadPoolExecutor,
) -> None:
    """One send waits on a receiver that does not answer while the others keep the process busy:
    they still run ``steady`` (two) at a time beside it, not one."""
    gate = threading.Event()
    outside: dict[int, float] = {}  # thread -> since when it waits on the receiver
    sends = Sends(work=0.1)
    held = 100

    def run(item: int) -> None:
        if item != held:
            sends(item)
            return
        outside[threading.get_ident()] = time.monotonic()
        gate.wait(30)
        del outside[threading.get_ident()]

    admission = Admission(pool, run, steady=2, most=6, patience=0.05, busy=0.2, held_since=outside.get)
    try:
        for item in (held, *range(6)):
            admission.submit(item)
        wait_until(lambda: len(sends.done) == 6, timeout=20, what="the deliveries not held up")
        assert sends.most == 2
        assert admission.running == 1  # the one held up, still waiting for its answer
    finally:
        gate.set()
    wait_until(lambda: admission.running == 0, timeout=10, what="the one held up to finish")


def test_a_delivery_held_up_by_its_receiver_lets_another_start_half_way_to_the_next_look(
    pool: ThreadPoolExecutor,
) -> None:
    """A send that waits on a slow receiver holds the others up for half a patience, not a whole
    one; half-way, only that many more start (the whole look, with the process idle, would start
    every one waiting)."""
    gate = threading.Event()
    outside: dict[int, float] = {}  # thread -> since when it waits on the receiver
    sends = Sends(gate)
    held = 100

    def run(item: int) -> None:
        if item != held:
            sends(item)
            return
        outside[threading.get_ident()] = time.monotonic() - 60  # waiting on its answer for long
        gate.wait(30)
        del outside[threading.get_ident()]

    admission = Admission(pool, run, steady=1, most=6, patience=4.0, held_since=outside.get)
    try:
        for item in (held, *range(4)):
            admission.submit(item)
        assert admission.running == 1
        # Half-way is two seconds away, the whole look four.
        wait_until(lambda: sends.now == 1, timeout=3.5, what="a delivery beside the one held up")
        assert admission.running == 2
        assert admission.waiting == 3
        wait_until(lambda: sends.now == 4, timeout=10, what="every delivery, at the whole look")
    finally:
        gate.set()
    wait_until(lambda: admission.running == 0, timeout=10, what="every delivery to finish")


def test_once_receivers_are_slow_a_delivery_that_begins_waiting_on_its_answer_lets_the_next_start(
    pool: ThreadPoolExecutor,
) -> None:
    """Before any send is held up, a send waiting on its answer still counts at work (receivers
    that answer within milliseconds keep the process busy). Once one is held up, every send that
    begins waiting lets the next start at once, without waiting for a look."""
    gate = threading.Event()
    outside: dict[int, float] = {}  # thread -> since when it waits on the receiver
    listeners: list[Callable[[int], None]] = []
    began = threading.Event()
    held = 100

    def on_awaiting(listener: Callable[[int], None]) -> Callable[[], None]:
        listeners.append(listener)
        return lambda: listeners.remove(listener)

    def run(item: int) -> None:  # as the HTTP transport does: noted as waiting, listeners told
        me = threading.get_ident()
        outside[me] = time.monotonic() - (60 if item == held else 0)
        for listener in listeners:
            listener(me)
        began.set()
        gate.wait(30)
        del outside[me]

    admission = Admission(
        pool, run, steady=1, most=6, patience=4.0, held_since=outside.get, on_awaiting=on_awaiting
    )
    try:
        for item in (held, *range(4)):
            admission.submit(item)
        began.wait(10)
        assert admission.running == 1  # no look yet: nothing is known to be slow
        # Half-way (two seconds on) the one held up is seen, and the rest follow one another; the
        # whole look is four seconds away.
        wait_until(lambda: admission.running == 5, timeout=3.5, what="every delivery under way")
    finally:
        gate.set()
    wait_until(lambda: admission.running == 0, timeout=10, what="every delivery to finish")
    admission.close()
    assert listeners == []


def test_a_delivery_that_crashes_does_not_stop_the_ones_behind_it(pool: ThreadPoolExecutor) -> None:
    sends = Sends()
    submitted(pool, (-1, 1, -2, 2), sends, steady=1, most=6, patience=30.0)
    wait_until(lambda: len(sends.done) == 4, timeout=10, what="every delivery")
    assert sends.done == [-1, 1, -2, 2]


def test_closing_gives_back_what_waits_and_refuses_more(pool: ThreadPoolExecutor) -> None:
    gate, sends, admission = gated(pool, 4, steady=1, most=6, patience=30.0)
    wait_until(lambda: sends.now == 1, timeout=10, what="a delivery under way")
    assert admission.close() == [1, 2, 3]
    with pytest.raises(RuntimeError):
        admission.submit(4)
    gate.set()
    wait_until(lambda: admission.running == 0, timeout=10, what="the running delivery to finish")
    assert sends.done == [0]


def test_waiting_for_fewer_waiting_returns_once_deliveries_have_started(pool: ThreadPoolExecutor) -> None:
    gate, sends, admission = gated(pool, 6, steady=2, most=6, patience=30.0)
    returned = threading.Event()
    waiter = threading.Thread(target=lambda: (admission.wait_fewer(3, timeout=30), returned.set()))
    waiter.start()
    wait_until(lambda: sends.now == 2, timeout=10, what="two deliveries under way")
    assert not returned.is_set() and admission.waiting == 4
    gate.set()  # the first two finish, their threads take the next ones, and the queue shrinks
    wait_until(returned.is_set, timeout=10, what="wait_fewer to return")
    assert admission.waiting < 3
    waiter.join(10)


def test_waiting_for_fewer_deliveries_waiting_ends_when_closed_or_after_the_timeout(
    pool: ThreadPoolExecutor,
) -> None:
    gate, sends, admission = gated(pool, 6, steady=1, most=6, patience=30.0)
    admission.wait_fewer(1, timeout=0.05)  # returns, though five still wait
    assert admission.waiting == 5
    closing = threading.Timer(0.2, admission.close)
    closing.start()
    admission.wait_fewer(1, timeout=30)  # returns once closed, long before its timeout
    assert admission.waiting == 0
    closing.join(10)
    gate.set()


def test_a_delivery_can_take_the_item_its_thread_runs_next_and_that_one_runs_next_on_it(
    pool: ThreadPoolExecutor,
) -> None:
    """What a delivery takes with ``take_next`` is what its thread runs right after it, whatever
    else would have started, and nothing is taken while the slots are full or nothing waits."""
    admission: Admission[int]
    ran: list[tuple[int, int, int | None]] = []  # (item, thread, what it took next)
    submitted_all = threading.Event()

    def run(item: int) -> None:
        submitted_all.wait(10)  # the first one starts as it is submitted: let the rest wait first
        taken = admission.take_next() if item % 2 == 0 else None
        ran.append((item, threading.get_ident(), taken))

    admission = Admission(pool, run, steady=1, most=6, patience=30.0)
    for item in range(6):
        admission.submit(item)
    submitted_all.set()
    wait_until(lambda: len(ran) == 6, timeout=10, what="every delivery")
    assert [item for item, _, _ in ran] == list(range(6))
    for (_item, thread, taken), (following, next_thread, _) in zip(ran, ran[1:], strict=False):
        if taken is not None:
            assert (taken, next_thread) == (following, thread)
    assert [taken for _, _, taken in ran] == [1, None, 3, None, 5, None]
    assert admission.take_next() is None  # not from a thread running one of its deliveries


def test_nothing_is_taken_next_once_closed_or_while_nothing_waits(pool: ThreadPoolExecutor) -> None:
    gate = threading.Event()
    took: list[int | None] = []
    admission: Admission[int]

    def run(item: int) -> None:
        gate.wait(30)
        took.append(admission.take_next())

    admission = Admission(pool, run, steady=1, most=6, patience=30.0)
    for item in range(3):
        admission.submit(item)
    wait_until(lambda: admission.running == 1, timeout=10, what="a delivery under way")
    assert admission.close() == [1, 2]
    gate.set()
    wait_until(lambda: admission.running == 0, timeout=10, what="it to finish")
    assert took == [None]
