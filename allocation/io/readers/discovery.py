"""Finding tonight's files: the ``batches/`` and ``orders/`` folders of the inbox, each file
checked (regular, supported type, inside the inbox, complete), sized and hashed (sha256) once.

Every entry of the inbox that is not read is reported, never passed over in silence: entries
that cannot be read are file-level rejections, entries in the wrong place (``Orders/``, a
top-level ``orders.csv``, a hidden ``orders/.late.csv``) are ignored with a reason saying where
the file should go, and files not yet complete (a temporary upload name such as ``.part``, or
changed within the settle time) are left for the next run. The night goes on with the others.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import polars as pl

from allocation.io import rejections
from allocation.io.schemas import Kind

KINDS: Final[tuple[Kind, ...]] = ("batches", "orders")  # batches first: stock before demand
SUPPORTED_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".parquet", ".jsonl")
#: The `kind` of an entry that is in neither kind folder (it belongs to no kind).
INBOX_ENTRY: Final = "file"
#: Names uploads and downloads give a file while they write it, renamed when complete
#: (curl/wget/browsers, WinSCP, FileZilla, scripts): compared lower case.
TEMPORARY_SUFFIXES: Final[tuple[str, ...]] = (
    ".part",
    ".partial",
    ".filepart",
    ".crdownload",
    ".download",
    ".upload",
    ".tmp",
    ".temp",
)
#: The same suffixes as one regular expression (Python's and DuckDB's RE2 syntax alike): a name
#: with it removed is the name the upload will have once renamed, `o1.csv.part` -> `o1.csv`.
TEMPORARY_NAME: Final = "(?i)(" + "|".join(re.escape(s) for s in TEMPORARY_SUFFIXES) + ")$"

#: What became of an entry that is not read tonight: ``rejected`` (in a kind folder but cannot
#: be read: a bad name, an unknown type, a folder, a pipe), ``ignored`` (not an inbox file: in the
#: wrong place, hidden, a backup copy) or ``waiting`` (not complete yet: read by a later run).
NotReadStatus = Literal["rejected", "ignored", "waiting"]


class InboxError(Exception):
    """The inbox itself is unusable: a person must fix it before any night can run."""


@dataclass(frozen=True)
class InboxFile:
    kind: Kind
    path: Path  # the file's path in the inbox (a symlink is not resolved)
    source_file: str  # relative to the inbox, posix: "orders/2026-11-26.csv"
    size: int
    sha256: str


@dataclass(frozen=True)
class NotRead:
    """An inbox entry the night does not read, and why."""

    kind: str  # "orders" or "batches" inside a kind folder, else INBOX_ENTRY
    source_file: str  # relative to the inbox: "Orders", "orders.csv", "orders/.late.csv"
    reason: str
    status: NotReadStatus


@dataclass(frozen=True)
class InboxListing:
    """Everything found in the inbox: the files to read, in arrival order, and every other
    entry with the reason it is not read (in the order found)."""

    files: list[InboxFile]
    not_read: list[NotRead]

    def rejections(self) -> pl.DataFrame:
        """The entries not read as file-level rejections (``line`` and ``raw`` null)."""
        return rejections.build(
            kind=[entry.kind for entry in self.not_read],
            source_file=[entry.source_file for entry in self.not_read],
            line=None,
            reason=[entry.reason for entry in self.not_read],
            raw=None,
        )


#: The end of a missing inbox's message for whoever runs the reader without naming the option
#: that gives the inbox (the command and the flow name theirs: `allocation.service.preflight`).
GIVE_ANOTHER_INBOX = "or give another inbox folder"


def check_inbox(inbox: Path, other: str = GIVE_ANOTHER_INBOX) -> None:
    """Raises ``InboxError`` when the inbox itself is missing or is not a folder: a person must
    fix that. ``other`` ends the message with what that person can change instead. A relative
    path is shown with its full path too (a flow run's is relative to the worker's checkout)."""
    if inbox.is_dir():
        return
    shown = str(inbox) if inbox.is_absolute() else f"{inbox} ({inbox.absolute()})"
    what = "is not a folder: make it a folder" if inbox.exists() else "does not exist: create it"
    raise InboxError(f"inbox folder {shown} {what} with batches/ and orders/ subfolders, {other}")


def find_inbox_files(
    inbox: Path, settle_seconds: float = 0.0, now: float | None = None
) -> tuple[list[InboxFile], pl.DataFrame]:
    """The readable files of ``inbox/batches/`` then ``inbox/orders/``, each in name order, and
    every other entry of the inbox as a file-level rejection (see ``list_inbox``)."""
    listing = list_inbox(inbox, settle_seconds, now)
    return listing.files, listing.rejections()


def list_inbox(inbox: Path, settle_seconds: float = 0.0, now: float | None = None) -> InboxListing:
    """The files of ``inbox/batches/`` then ``inbox/orders/``, each in name order, and every
    entry that is not read, with its reason.

    Only the folders named exactly ``batches`` and ``orders`` are read (``Orders/`` is refused
    on every file system, also where names ignore case). A file last changed less than
    ``settle_seconds`` before ``now`` (default: the clock), or changed while it was hashed, is
    still being written: ``waiting``. A missing kind folder means nothing of that kind tonight.
    Raises ``InboxError`` when the inbox itself is missing or unusable.
    """
    check_inbox(inbox)
    try:
        root = inbox.resolve(strict=True)
        top = sorted(entry.name for entry in os.scandir(inbox))
    except OSError as exc:
        raise InboxError(f"cannot open inbox folder {inbox}: {exc}") from exc

    clock = time.time() if now is None else now
    files: list[InboxFile] = []
    not_read: list[NotRead] = []
    for name in top:
        if name not in KINDS:
            not_read.append(_outside_the_kind_folders(inbox / name, name))
    for kind in KINDS:
        if kind not in top:
            continue
        folder = inbox / kind
        if not folder.is_dir():
            not_read.append(
                NotRead(
                    kind,
                    kind,
                    f"is not a folder: {kind}/ must be a folder of {kind} files",
                    "rejected",
                )
            )
            continue
        try:
            names = sorted(entry.name for entry in os.scandir(folder))
        except OSError as exc:
            not_read.append(NotRead(kind, kind, f"cannot list folder: {exc}", "rejected"))
            continue
        allowed_roots = (root, folder.resolve())
        for name in names:
            found = _inbox_file(kind, folder / name, name, allowed_roots, settle_seconds, clock)
            if isinstance(found, NotRead):
                not_read.append(found)
            else:
                files.append(found)
    return InboxListing(files, not_read)


_BAD_NAME: Final = (
    "file name is not valid UTF-8 (its bad bytes are shown as \\xNN): rename the file with a "
    "UTF-8 name; it is not read until then"
)
_WHERE: Final = "only files directly inside batches/ (manifests) and orders/ (order lines) are read"


def _is_utf8(name: str) -> bool:
    """False for a name the file system gave with bytes that are not UTF-8 (Python keeps them
    as lone surrogates, which no file, table or report can hold as text)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown_name(name: str) -> str:
    """A file name as readable text: bytes that are not UTF-8 become ``\\xNN`` (Python's
    ``backslashreplace``), e.g. ``badname-\\xff.csv`` for the bytes ``badname-<FF>.csv``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _outside_the_kind_folders(path: Path, name: str) -> NotRead:
    """An entry directly in the inbox other than ``batches/`` and ``orders/``: never read."""
    shown = shown_name(name)
    is_folder = path.is_dir()
    if name.casefold() in KINDS and is_folder:
        kind = name.casefold()
        reason = (
            f"folder '{shown}' is not read: the inbox folders are named in lower case; rename "
            f"it to {kind}/ (or move its files into {kind}/)"
        )
    elif is_folder:
        reason = f"folder '{shown}' is not read: {_WHERE}; move its files into one of them"
    else:
        reason = f"is directly in the inbox, not read: {_WHERE}; move it into {_guess(name)}"
    if name.startswith(".") and not is_folder:
        reason = f"hidden (its name starts with '.'), not read: {_WHERE}"
    return NotRead(INBOX_ENTRY, shown + ("/" if is_folder else ""), reason, "ignored")


def _guess(name: str) -> str:
    """Where a stray file probably belongs, from its name."""
    lowered = name.casefold()
    if "order" in lowered:
        return "orders/"
    if "batch" in lowered or "manifest" in lowered:
        return "batches/"
    return "batches/ or orders/"


def _inbox_file(
    kind: Kind,
    path: Path,
    name: str,
    allowed_roots: tuple[Path, ...],
    settle_seconds: float,
    now: float,
) -> InboxFile | NotRead:
    """The ``InboxFile`` at ``path``, or why it is not read."""
    source_file = f"{kind}/{shown_name(name)}"  # the name itself when it is valid UTF-8

    def not_read(reason: str, status: NotReadStatus = "rejected") -> NotRead:
        return NotRead(kind, source_file, reason, status)

    if name.startswith("."):
        # Before the name's bytes are judged: a hidden file is an editor's or an upload's
        # temporary file whatever its name, never a rejected delivery.
        return not_read(
            "hidden (its name starts with '.'), not read: rename it without the dot to have "
            "it read (hidden names are editors' and uploads' temporary files)",
            "ignored",
        )
    if not _is_utf8(name):
        return not_read(_BAD_NAME)

    lowered = name.lower()
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return not_read(f"broken symlink: its target {path.readlink()} does not exist")
        if not any(target.is_relative_to(allowed) for allowed in allowed_roots):
            return not_read(
                f"symlink points outside the inbox ({target}): copy the file into {kind}/"
            )
    try:
        before = path.stat()
    except OSError as exc:
        return not_read(f"cannot read file: {exc}")
    if stat.S_ISDIR(before.st_mode):
        return not_read(f"is a directory; only files directly inside {kind}/ are read")
    temporary = next((s for s in TEMPORARY_SUFFIXES if lowered.endswith(s)), None)
    if temporary is not None:
        return not_read(
            f"still being written (its name ends in '{name[-len(temporary) :]}', an upload's "
            f"temporary name): read by a later run once renamed to its final name, e.g. "
            f"{kind}/{name[: -len(temporary)] or 'NAME.csv'}",
            "waiting",
        )
    if name.endswith("~"):
        return not_read(
            f"a backup copy (its name ends in '~'), not read: only .csv, .parquet and .jsonl "
            f"files in {kind}/ are read",
            "ignored",
        )
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        found = f"'{path.suffix}'" if path.suffix else "(no extension)"
        return not_read(f"unsupported file type {found}: expected .csv, .parquet or .jsonl")
    if not stat.S_ISREG(before.st_mode):
        return not_read("not a regular file (device, pipe or socket): only regular files are read")
    recent = _changed_recently(before, settle_seconds, now)
    if recent is not None:
        return not_read(recent, "waiting")
    try:
        with path.open("rb") as handle:
            digest = hashlib.file_digest(handle, "sha256")
            hashed = handle.tell()
            after = os.fstat(handle.fileno())
    except OSError as exc:
        return not_read(f"cannot read file: {exc}")
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or (
        hashed != after.st_size
    ):
        return not_read(
            f"still being written: it changed while the night read it ({before.st_size:,} bytes, "
            f"then {after.st_size:,}): left for the next run",
            "waiting",
        )
    return InboxFile(
        kind=kind, path=path, source_file=source_file, size=after.st_size, sha256=digest.hexdigest()
    )


def _changed_recently(found: os.stat_result, settle_seconds: float, now: float) -> str | None:
    """Why a file counts as still being written (changed within the settle time), or None.

    Every write moves a file's modification time, so a file unchanged for ``settle_seconds`` has
    had a stable size and content that long. A time further in the future than the settle time is
    a wrong clock, not a write in progress: such a file is read."""
    if settle_seconds <= 0:
        return None
    age = now - found.st_mtime
    if not -settle_seconds < age < settle_seconds:
        return None
    return (
        f"still being written: last changed {max(age, 0):.0f} s before the night looked, and a "
        f"file is read once unchanged for {settle_seconds:g} s (ALLOCATION_INBOX_SETTLE_SECONDS): "
        "left for the next run"
    )
