"""Is a file usable UTF-8 text? Streams it once: binary, UTF-16, bad UTF-8 and empty files are
named with the byte offset where they go wrong, so the supplier knows what to fix."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Final

READ_BLOCK: Final = 1 << 22  # bytes per read when checking a file


def text_problem(path: Path, empty_reason: str) -> str | None:
    """Why the file is not usable UTF-8 text (binary, not UTF-8, empty), or None.

    Streams the file once. A NUL byte anywhere wins over a UTF-8 error (a binary file is
    reported as binary); offsets are 0-based positions in the file's bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before ``block``
    utf8_error: int | None = None
    has_text = False
    with path.open("rb") as handle:
        while block := handle.read(READ_BLOCK):
            skip = 0
            if offset == 0:
                if block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                    return (
                        "not valid UTF-8 at byte offset 0: the file is UTF-16 (byte order "
                        "mark): re-export the file as UTF-8"
                    )
                if block.startswith(codecs.BOM_UTF8):
                    skip = len(codecs.BOM_UTF8)
            nul = block.find(b"\x00")
            if nul >= 0:
                return f"not a text file (binary content at byte {offset + nul})"
            if utf8_error is None:
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(block[skip:] if skip else block)
                except UnicodeDecodeError as exc:
                    utf8_error = offset + skip - pending + exc.start
                else:
                    has_text = has_text or (bool(text) and not text.isspace())
            offset += len(block)
    if utf8_error is None:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            utf8_error = offset - pending + exc.start
    if utf8_error is not None:
        return f"not valid UTF-8 at byte offset {utf8_error}: re-export the file as UTF-8"
    if not has_text:
        return empty_reason
    return None
