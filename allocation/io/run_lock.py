"""One writer per warehouse.

Prefect's concurrency limit is not enough on its own (duplicate scheduled runs, a manual trigger
during the night, a worker that died holding its slot), so the warehouse keeps its own lock: an
`flock` on a file in the pipeline's state folder, which the kernel releases when the holder dies,
plus a note of who holds it (run, PID, business date) for the message a waiting run prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from allocation.io.disk import is_disk_full

log = logging.getLogger(__name__)


class RunLockError(RuntimeError):
    """The warehouse's run lock cannot be taken; the message says what to fix."""


class RunLockTimeout(RunLockError):
    """Another run holds the warehouse for longer than we may wait."""


def _open_lock(path: Path) -> int:
    """The lock file's descriptor. Never follows a symbolic link (a link would let the lock
    truncate whatever file it points at) and takes only a regular file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise RunLockError(
                f"the run lock {path} is a symbolic link (to {os.readlink(path)}); the pipeline "
                "never writes through a link: delete the link (the next run creates the lock "
                "as a plain file)"
            ) from None
        full = " (the disk is full: free space there)" if is_disk_full(error) else ""
        raise RunLockError(
            f"cannot create the run lock {path}: {error.strerror or error}{full}; the folder "
            "beside the warehouse must be writable"
        ) from error
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
        os.close(fd)
        what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "a hard link"
        raise RunLockError(
            f"the run lock {path} is {what} (the lock would overwrite what it shares): move it "
            "away (the next run creates the lock as a plain file)"
        )
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 65536).decode("utf-8", errors="replace").strip()
    if not text:
        return {}
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {"note": text[:200]}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another run (no details recorded)"
    return (
        f"run {holder.get('run_id', '?')} (PID {holder.get('pid', '?')}, business date "
        f"{holder.get('business_date', '?')}, started {holder.get('started_at', '?')})"
    )


@contextlib.contextmanager
def run_lock(
    path: Path, *, run_id: str, business_date: str, timeout: float, poll: float = 0.25
) -> Iterator[None]:
    """Holds the warehouse's write lock for the block; waits at most `timeout` seconds."""
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waiting and timeout > 0:
                    waiting = True
                    log.info(
                        "Waiting up to %gs for the warehouse: it is being written by %s",
                        timeout,
                        describe(_read_holder(fd)),
                    )
                if time.monotonic() >= deadline:
                    raise RunLockTimeout(
                        f"the warehouse is being written by {describe(_read_holder(fd))}; "
                        f"waited {timeout:g}s. Let that run finish, then run this night again "
                        f"(lock file: {path})"
                    ) from None
                time.sleep(poll)
        left = _read_holder(fd)
        if left:
            pid = left.get("pid")
            state = "no longer running" if isinstance(pid, int) and not _pid_alive(pid) else "gone"
            log.warning(
                "Taking over the warehouse lock left by %s, which is %s", describe(left), state
            )
        note = {
            "run_id": run_id,
            "pid": os.getpid(),
            "business_date": business_date,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode(), 0)
            os.fsync(fd)
        except OSError as error:
            full = " (the disk is full: free space there)" if is_disk_full(error) else ""
            raise RunLockError(
                f"cannot write the run lock {path}: {error.strerror or error}{full}"
            ) from error
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
