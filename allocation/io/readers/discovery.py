"""Finding tonight's files: the ``batches/`` and ``orders/`` folders of the inbox, each file
checked (regular, supported type, inside the inbox), sized and hashed (sha256) once.

Entries that cannot be read become file-level rejections; the night goes on with the others.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import polars as pl

from allocation.io import rejections
from allocation.io.schemas import Kind

KINDS: Final[tuple[Kind, ...]] = ("batches", "orders")  # batches first: stock before demand
SUPPORTED_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".parquet", ".jsonl")


class InboxError(Exception):
    """The inbox itself is unusable: a person must fix it before any night can run."""


@dataclass(frozen=True)
class InboxFile:
    kind: Kind
    path: Path  # the file's path in the inbox (a symlink is not resolved)
    source_file: str  # relative to the inbox, posix: "orders/2026-11-26.csv"
    size: int
    sha256: str


def find_inbox_files(inbox: Path) -> tuple[list[InboxFile], pl.DataFrame]:
    """The readable files of ``inbox/batches/`` then ``inbox/orders/``, each in name order.

    Returns ``(files, rejections)``: entries that cannot be read (subfolders, symlinks leaving
    the inbox, unsupported file types, special files) are file-level rejections. Hidden entries
    (name starting with ``.``, e.g. editors' temporary files) are ignored silently, as is
    anything directly in the inbox outside the two folders. A missing kind folder means nothing
    of that kind tonight. Raises ``InboxError`` when the inbox itself is missing or unusable.
    """
    if not inbox.exists():
        raise InboxError(
            f"inbox folder {inbox} does not exist: create it with batches/ and orders/ "
            "subfolders, or give another inbox folder"
        )
    if not inbox.is_dir():
        raise InboxError(
            f"inbox folder {inbox} is not a folder: give a folder that has batches/ and "
            "orders/ subfolders"
        )
    try:
        root = inbox.resolve(strict=True)
    except OSError as exc:
        raise InboxError(f"cannot open inbox folder {inbox}: {exc}") from exc

    files: list[InboxFile] = []
    rej_kinds: list[Kind] = []
    rej_sources: list[str] = []
    rej_reasons: list[str] = []

    def reject(kind: Kind, source_file: str, reason: str) -> None:
        rej_kinds.append(kind)
        rej_sources.append(source_file)
        rej_reasons.append(reason)

    for kind in KINDS:
        folder = inbox / kind
        if not folder.exists() and not folder.is_symlink():
            continue
        if not folder.is_dir():
            reject(kind, kind, f"is not a folder: {kind}/ must be a folder of {kind} files")
            continue
        try:
            names = sorted(entry.name for entry in folder.iterdir())
        except OSError as exc:
            reject(kind, kind, f"cannot list folder: {exc}")
            continue
        allowed_roots = (root, folder.resolve())
        for name in names:
            if name.startswith("."):
                continue
            source_file = f"{kind}/{name}"
            if not _is_utf8(name):
                reject(kind, f"{kind}/{shown_name(name)}", _BAD_NAME)
                continue
            found = _inbox_file(kind, folder / name, source_file, allowed_roots)
            if isinstance(found, str):
                reject(kind, source_file, found)
            else:
                files.append(found)

    rejected = rejections.build(
        kind=rej_kinds, source_file=rej_sources, line=None, reason=rej_reasons, raw=None
    )
    return files, rejected


_BAD_NAME: Final = (
    "file name is not valid UTF-8 (its bad bytes are shown as \\xNN): rename the file with a "
    "UTF-8 name; it is not read until then"
)


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


def _inbox_file(
    kind: Kind, path: Path, source_file: str, allowed_roots: tuple[Path, ...]
) -> InboxFile | str:
    """The ``InboxFile`` at ``path``, or the reason it cannot be read."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return f"broken symlink: its target {path.readlink()} does not exist"
        if not any(target.is_relative_to(allowed) for allowed in allowed_roots):
            return f"symlink points outside the inbox ({target}): copy the file into {kind}/"
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        return f"cannot read file: {exc}"
    if stat.S_ISDIR(mode):
        return f"is a directory; only files directly inside {kind}/ are read"
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        found = f"'{path.suffix}'" if path.suffix else "(no extension)"
        return f"unsupported file type {found}: expected .csv, .parquet or .jsonl"
    if not stat.S_ISREG(mode):
        return "not a regular file (device, pipe or socket): only regular files are read"
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        return f"cannot read file: {exc}"
    return InboxFile(kind=kind, path=path, source_file=source_file, size=size, sha256=digest)
