"""One pass over an inbox file's bytes, shared by every reader.

Everything a reader parses comes through ``FileSource``: it hashes each block as it hands it on,
so the SHA-256 recorded for a loaded file describes exactly the bytes that were read, never a
version of the file seen earlier (the inbox is hashed once when it is listed, and a supplier may
be rewriting a file in place between that and the read). It also compares the file's identity
(device, inode, size, modification and change times) when the read starts and when it ends: a file
that changed while it was read is rejected whole (``FileChanged``) and not recorded, so the next
run reads it again, complete.

``TextChunks`` turns the blocks of a text file (CSV, JSON Lines) into pieces that end at a line
break, checked as they go: binary content, UTF-16, bytes that are not UTF-8 and an overlong line
reject the file whole, named with the byte offset. Memory is bounded by the piece, not the file.
"""

from __future__ import annotations

import codecs
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

READ_BLOCK: Final = 1 << 22  # bytes per read
#: Bytes of text handed to a parser at a time (cut at a line break): about 700,000 order lines.
CHUNK_BYTES: Final = 1 << 24
#: The longest line accepted, in bytes: far above any row (a CSV field is refused past 1 MiB),
#: and it bounds what one line can cost in memory.
MAX_LINE_BYTES: Final = 1 << 26

#: Why a last line without a line break is not trusted (CSV, JSON Lines).
CUT_LAST_LINE: Final = (
    "the file's last line has no line break at its end: the file may have been cut while it "
    "was being written, so this row is not trusted; send the file again complete (ending with "
    "a line break): its rows already received are then duplicates and this one is read"
)


class FileProblem(Exception):
    """The file cannot be read at all: it is rejected whole with this reason."""


class FileChanged(FileProblem):
    """The file changed while it was read: nothing of it is loaded or recorded."""


@dataclass(frozen=True)
class Identity:
    """What tells one version of a file from another without reading it."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Identity:
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)

    def change_from(self, earlier: Identity) -> str | None:
        """How this version differs from ``earlier``, in words, or None when it is the same."""
        if (self.device, self.inode) != (earlier.device, earlier.inode):
            return "it was replaced by another file"
        if self.size != earlier.size:
            return f"its size went from {earlier.size:,} to {self.size:,} bytes"
        if (self.mtime_ns, self.ctime_ns) != (earlier.mtime_ns, earlier.ctime_ns):
            return "it was written to"
        return None


def changed_reason(how: str) -> str:
    return (
        f"the file changed while it was read ({how}): nothing of it was loaded and it is not "
        "recorded as received; the next run reads it again. Deliver files by writing them "
        "under another name and renaming them into the inbox when complete"
    )


class FileSource:
    """``with FileSource(path) as source: for block in source.blocks(): ...``, then
    ``source.finish()`` (raises ``FileChanged``), ``source.sha256``, ``source.size``."""

    def __init__(self, path: Path, block_bytes: int | None = None) -> None:
        self.path = path
        self.block_bytes = block_bytes or READ_BLOCK
        self.size = 0
        self._digest = hashlib.sha256()
        self._handle = path.open("rb")
        self._read_to_end = False
        self.before = Identity.of(os.fstat(self._handle.fileno()))

    def __enter__(self) -> FileSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._handle.close()

    @property
    def sha256(self) -> str:
        """The checksum of the bytes handed on so far (the whole file once ``blocks`` ended)."""
        return self._digest.hexdigest()

    @property
    def file_object(self) -> BinaryIO:
        """The open file, for a reader that reads by position (Parquet), after ``blocks``."""
        return self._handle

    def blocks(self) -> Iterator[bytes]:
        """The file's bytes from the start, a block at a time, each hashed as it goes."""
        self._handle.seek(0)
        self.size = 0
        self._digest = hashlib.sha256()
        self._read_to_end = False
        while block := self._handle.read(self.block_bytes):
            self._digest.update(block)
            self.size += len(block)
            yield block
        self._read_to_end = True

    def drain(self) -> None:
        """Reads (and hashes) what is left of the file after a reader stopped reading blocks
        early; nothing once they were all read."""
        if self._read_to_end:
            return
        while block := self._handle.read(self.block_bytes):
            self._digest.update(block)
            self.size += len(block)
        self._read_to_end = True

    def finish(self) -> None:
        """Raises ``FileChanged`` when the file is not the one whose bytes were read: its
        identity moved since the read started, or the path now names another file. Reads
        (and hashes) first what a reader left unread."""
        self.drain()
        after = Identity.of(os.fstat(self._handle.fileno()))
        try:
            now: Identity | None = Identity.of(os.stat(self.path))
        except OSError:
            now = None
        how: str | None
        if now is None:
            how = "it was removed"
        elif (now.device, now.inode) != (self.before.device, self.before.inode):
            how = "it was replaced by another file"
        else:
            how = after.change_from(self.before)
        if how is None and self.size != after.size:
            how = f"{self.size:,} bytes were read of {after.size:,}"
        if how is not None:
            raise FileChanged(changed_reason(how))


@dataclass(frozen=True)
class TextChunk:
    data: bytes  # the chunk's bytes (the byte order mark left out)
    text: str  # the same, decoded
    offset: int  # bytes of the file before ``data``
    last: bool  # the file's last chunk
    terminated: bool  # ends with a line break (always true but for the file's last chunk)


def text_chunks(
    source: FileSource, empty_reason: str, chunk_bytes: int | None = None
) -> Iterator[TextChunk]:
    """The file as UTF-8 text, in chunks that end at a line break (``\\n``), each checked.

    Raises ``FileProblem`` for a file that is not usable text: a NUL byte anywhere (binary; it
    wins over a UTF-8 error found earlier, so the rest of the file is scanned for one), a
    UTF-16 byte order mark, a byte that is not UTF-8, a line over ``MAX_LINE_BYTES``, or no text
    at all (``empty_reason``). Offsets are 0-based positions in the file's bytes. Chunks
    already yielded stay valid text; the caller drops what it built from them."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    pending = b""  # bytes after the last line break seen
    offset = 0  # file bytes before ``pending``
    first = True
    has_text = False
    utf8_error: int | None = None
    blocks = source.blocks()
    for block in blocks:
        if first:
            first = False
            if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                raise FileProblem(
                    "not valid UTF-8 at byte offset 0: the file is UTF-16 (byte order mark): "
                    "re-export the file as UTF-8"
                )
            if block.startswith(codecs.BOM_UTF8):
                block = block[len(codecs.BOM_UTF8) :]
                offset = len(codecs.BOM_UTF8)
        nul = block.find(b"\x00")
        if nul >= 0:
            raise FileProblem(
                f"not a text file (binary content at byte {offset + len(pending) + nul})"
            )
        if utf8_error is not None:
            offset += len(block)
            continue  # only looking for a NUL byte now
        pending += block
        cut = pending.rfind(b"\n") + 1
        if len(pending) - cut > MAX_LINE_BYTES:  # the line being gathered
            raise FileProblem(_overlong(offset + cut))
        if cut == 0:
            continue
        if cut < chunk_bytes and len(pending) < chunk_bytes:
            continue  # gather a bigger chunk first
        data, pending = pending[:cut], pending[cut:]
        chunk = _checked(data, offset, last=False)
        if isinstance(chunk, int):
            utf8_error = chunk
        else:
            has_text = has_text or not chunk.text.isspace()
            yield chunk
        offset += len(data)
    if utf8_error is None and pending:
        tail = pending.rfind(b"\n") + 1
        if len(pending) - tail > MAX_LINE_BYTES:
            raise FileProblem(_overlong(offset + tail))
        chunk = _checked(pending, offset, last=True)
        if isinstance(chunk, int):
            utf8_error = chunk
        else:
            has_text = has_text or not chunk.text.isspace()
            if not has_text:
                raise FileProblem(empty_reason)
            yield chunk
            return
    if utf8_error is not None:
        raise FileProblem(
            f"not valid UTF-8 at byte offset {utf8_error}: re-export the file as UTF-8"
        )
    if not has_text:
        raise FileProblem(empty_reason)
    # The file ended with a line break: say so with an empty last chunk.
    yield TextChunk(b"", "", offset, last=True, terminated=True)


def _checked(data: bytes, offset: int, *, last: bool) -> TextChunk | int:
    """The chunk decoded, or the file offset of its first byte that is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut_in_a_character = last and exc.end == len(data) and b"\n" not in data[exc.start :]
        if not cut_in_a_character:
            return offset + exc.start
        # The file ends inside a character: a file cut while being written, whose last line
        # is rejected as cut. That line is shown with the partial character replaced.
        text = data.decode("utf-8", errors="replace")
    return TextChunk(
        data, text, offset, last=last, terminated=not last or data.endswith((b"\n", b"\r"))
    )


def _overlong(offset: int) -> str:
    return (
        f"a line starting at byte {offset} is over {MAX_LINE_BYTES:,} bytes long: not a row "
        "of an export (a missing line break, or not a CSV or JSON Lines file); re-export the file"
    )
