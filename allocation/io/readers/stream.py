"""One inbox file read as a stream of slices (``FileStream``), whatever its format.

A reader is a generator of ``FileSlice`` over a ``FileSource`` that returns the file's unused
column names; it raises ``FileProblem`` when the file cannot be read at all. ``FileStream`` runs
it and keeps what only the end of the file tells: whether the file was rejected whole (then the
slices already handed out must be dropped: ``allocation.service.loading.load_inbox`` stages a file's slices in one
transaction and rolls it back), whether it changed while it was read, and the checksum and size
of the bytes read.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator

from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import FileSlice, one_line
from allocation.io.readers.source import FileChanged, FileProblem, FileSource, text_chunks

#: A format's reader: slices of the file, then its unused columns (original names).
Reader = Callable[[InboxFile, FileSource], Generator[FileSlice, None, tuple[str, ...]]]


class FileStream:
    """``for part in stream: ...`` then ``stream.problem`` (None, or why the whole file is
    rejected), ``stream.changed``, ``stream.sha256``, ``stream.size``, ``stream.extra_columns``.
    Iterate it once; it never raises on bad input."""

    def __init__(
        self, file: InboxFile, reader: Reader | None, unsupported: str = "", *, text: bool = False
    ) -> None:
        self.file = file
        self._reader = reader
        self._text = text
        self.problem: str | None = unsupported or None
        self.changed = False
        self.sha256 = ""
        self.size = 0
        self.extra_columns: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[FileSlice]:
        if self._reader is None:
            return
        try:
            with FileSource(self.file.path) as source:
                try:
                    self.extra_columns = yield from self._reader(self.file, source)
                except FileProblem as problem:
                    self.problem = self._text_problem(source) or str(problem)
                    self.extra_columns = ()
                try:
                    source.finish()  # reads what the reader left, then compares identities
                except FileChanged as changed:
                    self.problem = str(changed)
                    self.changed = True
                    self.extra_columns = ()
                self.sha256, self.size = source.sha256, source.size
        except OSError as exc:
            self.problem = f"cannot read file: {one_line(exc)}"
            self.extra_columns = ()

    def _text_problem(self, source: FileSource) -> str | None:
        """For a text file rejected whole: why the whole file is not usable text, if it is not
        (binary, not UTF-8: found further on than what the reader stopped at, and the reason the
        supplier must hear first). Reads the file again, hashing it whole."""
        if not self._text:
            return None
        try:
            for _ in text_chunks(source, ""):
                pass
        except FileProblem as problem:
            return str(problem) or None  # an empty file: the reader words it
        return None
