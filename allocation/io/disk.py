"""Telling a full disk from other I/O errors.

A full disk does not fix itself within a retry's few seconds, and its real cause ("No space left
on device") must reach the person who can free space, not be masked by what failed next.
"""

from __future__ import annotations

import errno

from allocation.io.error_chain import error_chain

#: errno values meaning "no room": the disk is full, or the user's quota is.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
#: How DuckDB words it (its IOException carries the OS message, not an errno).
_DUCKDB_NO_ROOM = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error: BaseException | None) -> bool:
    """True when ``error``, or an error it was raised from, says the disk (or quota) is full."""
    return any(
        (isinstance(one, OSError) and one.errno in _NO_ROOM)
        or any(words in str(one) for words in _DUCKDB_NO_ROOM)
        for one in error_chain(error)
    )
