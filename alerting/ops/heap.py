"""The worker process's heap and Python's garbage collector."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Set what a worker process has built by now (modules, settings, rules, receivers' clients)
    aside from the garbage collector for good: a full collection then looks only at what came
    after, instead of stalling every thread of the process for a tenth of a second in an alert
    storm, when the alerts held for delivery make full collections come due.

    Garbage is collected first, so that none is kept for good. What is set aside and later
    dropped is still freed when nothing refers to it; only reference cycles among it stay (the
    first routing configuration's, after a reload: once, not per reload)."""
    gc.collect()
    gc.freeze()
