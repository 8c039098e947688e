"""Pausing Python's cyclic garbage collector around code that builds many small objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small objects that form no
    cycles (a reader's lists and dicts of strings, the allocator's `Batch`/`Product` objects):
    reference counting frees them, and the collector would only rescan them again and again.

    The collector is process-wide, so it is re-enabled right after, and only if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
