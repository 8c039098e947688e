"""Find the files of an inbox folder and read them into string frames.

The inbox holds two folders, ``batches/`` and ``orders/``; the files directly inside them are
tonight's input, read in name order (the arrival order). Every file becomes a ``FileRead``:

* ``rows``: the reader contract of ``docs/design.md`` (``source_file, line, <required columns>,
  raw``), every value a string exactly as received, ``line`` the 1-based data row. ``raw`` is
  null for a CSV file whose columns are exactly the required ones, in order (the usual export):
  the row's text is then ``raw_text(kind)`` of its columns, worded only when a row needs it;
* ``rejected``: the rejection frame (``kind, source_file, line, reason, raw``). A row-level
  problem (a ragged CSV row, a JSON Lines line that is not an object) rejects that row and the
  rest of the file still loads; a file-level problem (empty, binary, not UTF-8, missing column,
  unreadable Parquet) rejects the whole file with ``line`` null and the night goes on with the
  other files.

No row is ever dropped silently: for every file, the ``line`` values of ``rows`` and of the row
rejections together are exactly ``1..N``. Values are not validated here (``validation.py`` does
that); only the structure is.
"""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import json
import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import time
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Final, Literal

import polars as pl

from allocation.io.schemas import REJECTION_SCHEMA

Kind = Literal["orders", "batches"]
KINDS: Final[tuple[Kind, ...]] = ("batches", "orders")  # batches first: stock before demand

REQUIRED_COLUMNS: Final[dict[Kind, tuple[str, ...]]] = {
    "orders": ("orderid", "sku", "qty"),
    "batches": ("reference", "sku", "qty", "eta"),
}
# Required columns that may be absent from a file's header: the column is then all null
# (for batches, a missing ``eta`` column means every batch is in stock).
OPTIONAL_COLUMNS: Final[dict[Kind, frozenset[str]]] = {
    "orders": frozenset(),
    "batches": frozenset({"eta"}),
}
# Applied after stripping and lower-casing a header name.
COLUMN_ALIASES: Final[dict[Kind, dict[str, str]]] = {
    "batches": {"ref": "reference"},
    "orders": {},
}
SUPPORTED_SUFFIXES: Final[tuple[str, ...]] = (".csv", ".parquet", ".jsonl")

# Largest CSV field accepted, in characters. ``csv.field_size_limit`` is process-wide; 1 MiB is
# far above any real value here and still stops a runaway quote from eating a whole file.
CSV_FIELD_SIZE_LIMIT: Final = 1 << 20
# Rows turned into one polars frame at a time (bounds the Python objects alive at once).
_CHUNK_ROWS: Final = 200_000
_READ_BLOCK: Final = 1 << 22  # bytes per read when hashing or checking a file


_dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


class InboxError(Exception):
    """The inbox itself is unusable: a person must fix it before any night can run."""


@dataclass(frozen=True)
class InboxFile:
    kind: Kind
    path: Path  # the file's path in the inbox (a symlink is not resolved)
    source_file: str  # relative to the inbox, posix: "orders/2026-11-26.csv"
    size: int
    sha256: str


@dataclass(frozen=True, eq=False)  # frames have no boolean equality
class FileRead:
    file: InboxFile
    rows: pl.DataFrame  # reader contract: source_file, line, <required columns>, raw
    rejected: pl.DataFrame  # rejection frame; line null = the whole file
    extra_columns: tuple[str, ...]  # file columns not used (original names), for the log

    @property
    def file_rejected(self) -> bool:
        """True when the whole file was rejected (``rows`` is then empty)."""
        return bool(self.rejected.height) and self.rejected["line"].is_null().any()


def raw_text(kind: Kind) -> pl.Expr:
    """``raw`` for a row that has exactly the required columns of ``kind``, in order: the JSON
    object of their values as text, worded as the reader words ``raw`` (``"qty": "3"``,
    ``"eta": "2026-12-01"``). Over a reader frame, the row as received; over typed rows, the row
    as it would have been received without stray spaces or signs."""
    return pl.struct(pl.col(c).cast(pl.String) for c in REQUIRED_COLUMNS[kind]).struct.json_encode()


def rows_schema(kind: Kind) -> pl.Schema:
    """Column contract of a reader frame of ``kind``."""
    return pl.Schema(
        {
            "source_file": pl.String,
            "line": pl.Int64,
            **dict.fromkeys(REQUIRED_COLUMNS[kind], pl.String),
            "raw": pl.String,
        }
    )


def empty_rows(kind: Kind) -> pl.DataFrame:
    return pl.DataFrame(schema=rows_schema(kind))


def empty_rejections() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTION_SCHEMA)


def _rejections(
    kind: Kind,
    source_file: str,
    lines: Sequence[int | None],
    reasons: Sequence[str],
    raws: Sequence[str | None],
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "kind": [kind] * len(lines),
            "source_file": [source_file] * len(lines),
            "line": lines,
            "reason": reasons,
            "raw": raws,
        },
        schema=REJECTION_SCHEMA,
    )


# --------------------------------------------------------------------------------------------
# Finding the files
# --------------------------------------------------------------------------------------------


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
            "subfolders or pass --inbox"
        )
    if not inbox.is_dir():
        raise InboxError(
            f"inbox folder {inbox} is not a folder: pass --inbox with a folder that has "
            "batches/ and orders/ subfolders"
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

    rejections = pl.DataFrame(
        {
            "kind": rej_kinds,
            "source_file": rej_sources,
            "line": [None] * len(rej_kinds),
            "reason": rej_reasons,
            "raw": [None] * len(rej_kinds),
        },
        schema=REJECTION_SCHEMA,
    )
    return files, rejections


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


# --------------------------------------------------------------------------------------------
# Reading one file
# --------------------------------------------------------------------------------------------


def read_inbox_file(file: InboxFile) -> FileRead:
    """Read one inbox file into a reader frame plus its rejections; never raises on bad input."""
    suffix = file.path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(file)
        if suffix == ".jsonl":
            from allocation.io.jsonl_reader import read_jsonl  # it builds on this module

            return read_jsonl(file)
        if suffix == ".parquet":
            return _read_parquet(file)
    except OSError as exc:
        return _file_rejected(file, f"cannot read file: {exc}")
    except UnicodeDecodeError as exc:  # the file changed after it was checked
        return _file_rejected(
            file,
            f"not valid UTF-8 (the file changed while it was read: {exc.reason}): "
            "re-export the file as UTF-8",
        )
    return _file_rejected(
        file, f"unsupported file type '{file.path.suffix}': expected .csv, .parquet or .jsonl"
    )


def _file_rejected(file: InboxFile, reason: str) -> FileRead:
    return FileRead(
        file=file,
        rows=empty_rows(file.kind),
        rejected=_rejections(file.kind, file.source_file, [None], [reason], [None]),
        extra_columns=(),
    )


@dataclass(frozen=True)
class _Header:
    keys: tuple[str, ...]  # per file column: its name in ``raw`` (the original name)
    sources: tuple[int | None, ...]  # per required column: file column index, None = absent
    extra: tuple[str, ...]  # original names of the file columns not used


def _normalise(kind: Kind, name: str) -> str:
    key = name.strip().lower()
    return COLUMN_ALIASES[kind].get(key, key)


def _header(kind: Kind, names: Sequence[str]) -> _Header | str:
    """Map a file's column names to the required columns, or say why the file is rejected."""
    # A blank header cell (e.g. Excel's trailing empty columns) gets a positional name so that
    # its values still have a key in ``raw``.
    keys = tuple(name if name.strip() else f"column_{i}" for i, name in enumerate(names, 1))
    normalised = [_normalise(kind, key) for key in keys]
    positions: dict[str, list[int]] = {}
    for i, norm in enumerate(normalised):
        positions.setdefault(norm, []).append(i)
    duplicates = {norm: idx for norm, idx in positions.items() if len(idx) > 1}
    if duplicates:
        described = "; ".join(
            f"{norm} (from {', '.join(repr(keys[i]) for i in idx)})"
            for norm, idx in duplicates.items()
        )
        return f"duplicate column name(s) in header: {described}"
    required = REQUIRED_COLUMNS[kind]
    missing = [c for c in required if c not in positions and c not in OPTIONAL_COLUMNS[kind]]
    if missing:
        return (
            f"missing required column(s): {', '.join(missing)}; "
            f"columns found: {', '.join(key.strip() for key in keys)}"
        )
    sources = tuple(positions[c][0] if c in positions else None for c in required)
    extra = tuple(keys[i] for i, norm in enumerate(normalised) if norm not in required)
    return _Header(keys=keys, sources=sources, extra=extra)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small lists and dicts.

    They hold only strings, so they form no cycles and reference counting frees them; the
    collector would only rescan them again and again (it tripled the CSV read time). It is
    process-wide, so it is re-enabled right after, and only if it was on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _text_problem(path: Path, empty_reason: str) -> str | None:
    """Why the file is not usable UTF-8 text (binary, not UTF-8, empty), or None.

    Streams the file once. A NUL byte anywhere wins over a UTF-8 error (a binary file is
    reported as binary); offsets are 0-based positions in the file's bytes.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before ``block``
    utf8_error: int | None = None
    has_text = False
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
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


# ----------------------------------------------------------------------------------------- CSV


def _read_csv(file: InboxFile) -> FileRead:
    problem = _text_problem(file.path, "empty file: no header row")
    if problem is not None:
        return _file_rejected(file, problem)
    fast = _read_plain_csv(file)
    if fast is not None:
        return fast
    if csv.field_size_limit() < CSV_FIELD_SIZE_LIMIT:
        csv.field_size_limit(CSV_FIELD_SIZE_LIMIT)
    with file.path.open(encoding="utf-8-sig", newline="") as handle, _gc_paused():
        reader = csv.reader(handle)
        try:
            return _parse_csv(file, reader)
        except csv.Error as exc:
            return _file_rejected(file, f"cannot parse CSV: {exc} (file line {reader.line_num})")


@dataclass(frozen=True)
class _PlainShape:
    """What one pass over a CSV file's bytes found (see ``_read_plain_csv``)."""

    plain: bool  # no quote character, no blank line, no carriage return outside "\r\n"
    header: bytes  # the first line, without its line ending
    separators: int  # commas in the whole file
    lines: int  # lines in the whole file, the header included


def _plain_shape(path: Path) -> _PlainShape:
    separators = newlines = returns = crlf = 0
    plain = False
    header = b""
    previous = b"\n"  # the byte before the block: a file starting with a line break is blank
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            if size == 0:
                if block.startswith(codecs.BOM_UTF8):
                    block = block[len(codecs.BOM_UTF8) :]
                header, found, _ = block.partition(b"\n")
                plain = bool(found) or len(block) < _READ_BLOCK  # a header longer than a block
            size += len(block)
            joined = previous + block
            if not plain or b'"' in block or b"\n\n" in joined or b"\n\r\n" in joined:
                plain = False
                break
            separators += block.count(b",")
            newlines += block.count(b"\n")
            if b"\r" in block:
                returns += block.count(b"\r")
                crlf += joined.count(b"\r\n")
            elif previous == b"\r":
                crlf += joined.startswith(b"\r\n")
            previous = block[-1:]
    if returns != crlf:  # a lone carriage return ends a row for the csv module
        plain = False
    ends_open = previous not in (b"\n", b"")
    return _PlainShape(
        plain=plain and bool(header.strip(b"\r")),
        header=header.removesuffix(b"\r"),
        separators=separators,
        lines=newlines + (1 if ends_open else 0),
    )


def _read_plain_csv(file: InboxFile) -> FileRead | None:
    """The fast path for the usual export: no quote characters, no blank lines, every row with
    as many fields as the header. Read by polars' multi-threaded parser; the result is exactly
    what the csv module path gives. ``None`` when the file is not that simple (the csv module
    then reads it and explains every odd row)."""
    shape = _plain_shape(file.path)
    if not shape.plain:
        return None
    names = next(csv.reader([shape.header.decode("utf-8")]))
    header = _header(file.kind, names)
    if isinstance(header, str):
        return None  # the csv path words the rejection
    width = len(names)
    rows = shape.lines - 1
    if shape.separators != (width - 1) * shape.lines:
        return None  # a ragged row somewhere
    try:
        values = pl.read_csv(
            file.path,
            has_header=False,
            skip_rows=1,
            separator=",",
            quote_char=None,
            schema={f"column_{i}": pl.String for i in range(width)},
            empty_string_is_null=False,
            truncate_ragged_lines=False,
            raise_if_empty=False,
            glob=False,
        )
    except (pl.exceptions.PolarsError, OSError):
        return None
    if values.height != rows:
        return None
    if rows and values.select(pl.max_horizontal(pl.all().str.len_bytes().max())).item() > (
        CSV_FIELD_SIZE_LIMIT
    ):
        return None  # the csv module refuses such a field: let it word the rejection
    if rows == 0:
        return FileRead(file, empty_rows(file.kind), empty_rejections(), header.extra)
    values.columns = list(header.keys)
    lines = pl.int_range(1, rows + 1, dtype=pl.Int64, eager=True)
    return FileRead(
        file=file,
        rows=_assemble(file, header, values, lines),
        rejected=empty_rejections(),
        extra_columns=header.extra,
    )


def _parse_csv(file: InboxFile, reader: Iterator[list[str]]) -> FileRead:
    names = next((row for row in reader if row), None)
    if names is None:
        return _file_rejected(file, "empty file: no header row")
    header = _header(file.kind, names)
    if isinstance(header, str):
        return _file_rejected(file, header)
    width = len(names)
    frames: list[pl.DataFrame] = []
    bad_lines: list[int | None] = []
    bad_reasons: list[str] = []
    bad_raws: list[str | None] = []
    line = 0  # data rows seen so far
    while block := list(islice(reader, _CHUNK_ROWS)):
        rows = [row for row in block if row]  # csv yields [] for a blank line: skipped
        if not rows:
            continue
        if set(map(len, rows)) == {width}:  # the usual case: no ragged row in this chunk
            good = rows
            lines: Sequence[int] = range(line + 1, line + 1 + len(rows))
        else:
            good = []
            good_lines: list[int] = []
            for number, row in enumerate(rows, line + 1):
                if len(row) == width:
                    good.append(row)
                    good_lines.append(number)
                else:
                    bad_lines.append(number)
                    bad_reasons.append(_ragged_reason(row, width))
                    bad_raws.append(_dumps(row))
            lines = good_lines
        line += len(rows)
        if good:
            frames.append(_csv_frame(file, header, good, lines))
    rows_frame = pl.concat(frames) if frames else empty_rows(file.kind)
    return FileRead(
        file=file,
        rows=rows_frame,
        rejected=_rejections(file.kind, file.source_file, bad_lines, bad_reasons, bad_raws),
        extra_columns=header.extra,
    )


def _ragged_reason(row: list[str], width: int) -> str:
    """Why a row with the wrong number of fields is rejected. A field holding line breaks means
    a quote opened and was closed lines later (or never): say so, since the next rows of the
    file were swallowed into this one."""
    found = f"row has {len(row)} field{'' if len(row) == 1 else 's'}, header has {width}"
    breaks = sum(field.count("\n") for field in row[:-1]) + row[-1].rstrip("\r\n").count("\n")
    if not breaks:
        return found
    opened = next(i for i, field in enumerate(row, 1) if "\n" in field)
    return (
        f"{found}: the quote opening field {opened} is not closed on its line, so the "
        f"next {breaks} line(s) of the file were read into this row; close the quote (or "
        'double a quote inside a value: "") and send the file again'
    )


def _csv_frame(
    file: InboxFile, header: _Header, rows: list[list[str]], lines: Sequence[int]
) -> pl.DataFrame:
    values = pl.DataFrame(
        [
            pl.Series(key, [row[i] for row in rows], dtype=pl.String)
            for i, key in enumerate(header.keys)
        ]
    )
    return _assemble(file, header, values, pl.Series("line", lines, dtype=pl.Int64))


def _assemble(
    file: InboxFile, header: _Header, values: pl.DataFrame, lines: pl.Series
) -> pl.DataFrame:
    """Reader frame from string columns named by ``header.keys`` (one per file column)."""
    height = values.height
    if header.keys == REQUIRED_COLUMNS[file.kind]:
        # `raw_text` words it when a row needs it: most never do (~0.1 s per 1M rows saved).
        raw = pl.repeat(None, height, dtype=pl.String, eager=True)
    else:
        raw = values.select(pl.struct(pl.all()).struct.json_encode()).to_series()
    columns = [
        pl.repeat(file.source_file, height, dtype=pl.String, eager=True).alias("source_file"),
        lines.alias("line"),
    ]
    for name, source in zip(REQUIRED_COLUMNS[file.kind], header.sources, strict=True):
        if source is None:
            columns.append(pl.repeat(None, height, dtype=pl.String, eager=True).alias(name))
        else:
            columns.append(values.to_series(source).alias(name))
    columns.append(raw.alias("raw"))
    return pl.DataFrame(columns)


# ----------------------------------------------------------------------------------- Parquet


def _read_parquet(file: InboxFile) -> FileRead:
    try:
        table = pl.read_parquet(file.path)
    except (Exception, pl.exceptions.PanicException) as exc:
        return _file_rejected(file, f"cannot read Parquet: {_one_line(exc)}")
    header = _header(file.kind, table.columns)
    if isinstance(header, str):
        return _file_rejected(file, header)
    texts: list[pl.Series] = []
    for i, (key, column) in enumerate(zip(header.keys, table.iter_columns(), strict=True)):
        try:
            texts.append(_as_text(column, used=i in header.sources).alias(key))
        except (Exception, pl.exceptions.PanicException) as exc:
            return _file_rejected(
                file,
                f"cannot read Parquet: column {column.name!r} of type {column.dtype} "
                f"cannot be turned into text: {_one_line(exc)}",
            )
    lines = pl.int_range(1, table.height + 1, dtype=pl.Int64, eager=True)
    return FileRead(
        file=file,
        rows=_assemble(file, header, pl.DataFrame(texts, height=table.height), lines),
        rejected=empty_rejections(),
        extra_columns=header.extra,
    )


def _as_text(column: pl.Series, *, used: bool) -> pl.Series:
    """A Parquet column as strings: ints as decimal text, dates as YYYY-MM-DD, nested as JSON.

    Raises when a column the pipeline uses cannot be turned into text faithfully.
    """
    dtype = column.dtype
    if dtype == pl.String:
        return column
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        if used:  # a list or a struct is no sku, qty or date
            raise ValueError("it holds lists or structs, not values: write it as text or numbers")
        frame = column.to_frame("v")
        as_json = pl.struct("v").struct.json_encode().str.slice(5).str.head(-1)
        return frame.select(pl.when(pl.col("v").is_not_null()).then(as_json)).to_series()
    if isinstance(dtype, pl.Datetime):
        # pandas has no date type: its dates arrive as midnight timestamps. A column of
        # midnights is a date column.
        if (column.drop_nulls().dt.time() == time(0)).all():
            return column.dt.strftime("%Y-%m-%d")
        return column.cast(pl.String)
    if dtype == pl.Binary:
        # Often strings written without the UTF-8 annotation. Bytes that are not UTF-8 are
        # never loaded as text (an unused column is kept in ``raw`` as hex).
        try:
            return column.cast(pl.String)
        except pl.exceptions.PolarsError:
            if used:
                raise
            return column.bin.encode("hex")
    return column.cast(pl.String)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
