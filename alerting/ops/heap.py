"""The worker process's heap and Python's garbage collector."""

from __future__ import annotations

import gc

# Allocations a young collection waits for (Python's default is 700). An alert storm decodes every
# alert it flushes into objects that live until they are delivered: at the default, the collector's
# counters reach a full collection every 70,000 of those, and each walks every alert held so far
# (making 200,000 alerts in a process took 7 full collections and 0.80 s, against 0.60-0.65 s
# without them). At 10,000, young collections are rarer and larger (the same objects walked, as
# often), and a storm's alerts rarely bring a full collection about.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Set what a worker process has built by now (modules, settings, rules, receivers' clients)
    aside from the garbage collector for good: a full collection then looks only at what came
    after, instead of stalling every thread of the process for a tenth of a second in an alert
    storm, when the alerts held for delivery make full collections come due. From then on, young
    collections wait for ``YOUNG_THRESHOLD`` allocations.

    Garbage is collected first, so that none is kept for good. What is set aside and later
    dropped is still freed when nothing refers to it; only reference cycles among it stay (the
    first routing configuration's, after a reload: once, not per reload)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
