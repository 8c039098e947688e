"""Telling a full disk from other I/O errors.

A full disk does not fix itself within a retry's few seconds, and its real cause ("No space left
on device") must reach the person who can free space, not be masked by what failed next.
"""

from __future__ import annotations

import errno

#: errno values meaning "no room": the disk is full, or the user's quota is.
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})
#: How DuckDB words it (its IOException carries the OS message, not an errno).
_DUCKDB_NO_ROOM = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error: BaseException | None) -> bool:
    """True when ``error``, or an error it was raised from, says the disk (or quota) is full."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_ROOM:
            return True
        if any(words in str(error) for words in _DUCKDB_NO_ROOM):
            return True
        error = error.__cause__ or error.__context__
    return False
