"""The JSON Lines reader: one JSON object per line, read into the reader contract (``schemas.py``).

Time and memory are linear in the file's size whatever its keys: each row keeps only the
required columns' values and its own ``raw`` text (its own keys, values as text), never a column
per key ever seen (a file whose every line brings a new key made that table grow with the square
of the file).

What a row is rejected for (the rest of the file still loads):

* a line that is not a JSON object (not JSON, an array, a string, ...);
* a key given twice in one object (``"qty":1,"qty":5``): which one the supplier meant is
  unknowable, so neither is taken;
* two keys that mean the same column once names are normalised (``"sku"`` and ``"SKU"``);
* a JSON object or array as the value of a required column (``"sku":{"x":1}``): not a value;
* a lone UTF-16 surrogate escape (``"\\ud83d"`` without its pair): not a character, so not text.

A file with no JSON object at all is rejected whole, as is a file that is not UTF-8 text.

The last line of a file that does not end with a line break is kept when it is a complete JSON
object: cutting an object's text always cuts its closing brace, so a cut line cannot parse. When
it does not parse, its reason says the file may have been cut while being written.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, Final

import polars as pl

from allocation.io import rejections
from allocation.io.garbage_collector import gc_paused
from allocation.io.readers.discovery import InboxFile
from allocation.io.readers.frames import FileSlice, dumps, one_line
from allocation.io.readers.header import normalise, optional_lookalike
from allocation.io.readers.source import CUT_LAST_LINE, FileProblem, FileSource, text_chunks
from allocation.io.schemas import REQUIRED_COLUMNS, Kind, empty_rows

_BLOCK_ROWS: Final = 200_000


class _RowProblem(Exception):
    """Why one JSON object cannot be a row."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: a dict, refusing a key given twice."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _RowProblem(f"key {_shown_key(twice)} is given twice in one object: send it once")
    return obj


# One decoder for the whole file (``json.loads`` with a hook builds a new one per call).
_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys)
_PLAIN_DECODER: Final = json.JSONDecoder()


def _decode(text: str) -> Any:
    """``json.loads``, refusing an object that gives a key twice. Every key is followed by a
    colon, so a line with no more colons than its object has keys cannot repeat one: only the
    others are parsed again with the (slower) duplicate check."""
    obj, end = _PLAIN_DECODER.raw_decode(text)  # ``text`` is stripped: no whitespace to skip
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    if type(obj) is dict and text.count(":") > len(obj):
        return _DECODER.decode(text)
    return obj


def _shown_key(key: str) -> str:
    return repr(key.encode("utf-8", "backslashreplace").decode("utf-8"))


def _lone_surrogate(text: str) -> str | None:
    """The first lone surrogate in ``text`` as an escape (``\\ud83d``), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"\\u{ord(text[exc.start]):04x}"
    return None


def read_jsonl_slices(
    file: InboxFile, source: FileSource
) -> Generator[FileSlice, None, tuple[str, ...]]:
    """One ``.jsonl`` inbox file, ``_BLOCK_ROWS`` rows at a time; returns its unused keys."""
    kind = file.kind
    required = REQUIRED_COLUMNS[kind]
    slots = {name: i for i, name in enumerate(required)}
    names: dict[str, str] = {}  # every key seen -> its normalised name (for ``extra``)
    # key set -> why a row with those keys is rejected, or None
    key_sets: dict[frozenset[str], str | None] = {frozenset(): None}
    rows: list[list[str | None]] = []
    raws: list[str | None] = []
    row_lines: list[int] = []
    bad_lines: list[int | None] = []
    bad_reasons: list[str] = []
    bad_raws: list[str | None] = []
    first_reason: str | None = None
    parsed_any = False
    line = 0
    for chunk in text_chunks(source, "empty file: no JSON objects"):
        texts = chunk.text.split("\n")
        if texts[-1] == "":
            texts.pop()  # the empty text after the chunk's last line break
        # The file's last line when it has no line break (a carriage return ends it too).
        cut_at = -1 if chunk.terminated or not texts else len(texts) - 1
        with gc_paused():
            for at, text in enumerate(texts):
                stripped = text.strip()
                if not stripped:
                    continue
                line += 1
                try:
                    obj = _decode(stripped)
                    if type(obj) is not dict:
                        raise _RowProblem(f"not a JSON object: {_json_type(obj)}")
                    parsed_any = True
                    if "\\u" in stripped and (lone := _lone_surrogate(dumps(obj))):
                        raise _RowProblem(
                            f"holds a lone UTF-16 surrogate escape ({lone}), which is not a "
                            "character: fix the exporter's escaping of emoji and other symbols"
                        )
                    if tuple(obj) == required:  # the usual row: the required keys, in order
                        values = list(obj.values())
                        for i, value in enumerate(values):
                            if type(value) is int:
                                values[i] = str(value)
                            elif value is not None and type(value) is not str:
                                values[i] = _value_text(required[i], value)
                        raw = None  # exactly ``raw_text(kind)``: left out, as for a plain CSV
                    else:
                        keys = frozenset(obj)
                        if keys not in key_sets:
                            key_sets[keys] = _register_keys(kind, obj, names)
                        duplicate = key_sets[keys]
                        if duplicate is not None:
                            raise _RowProblem(duplicate)
                        values = [None] * len(required)
                        for key, value in obj.items():
                            name = names[key]
                            position = slots.get(name)
                            if value is not None and type(value) is not str:
                                value = obj[key] = _value_text(
                                    name if position is not None else None, value
                                )
                            if position is not None:
                                values[position] = value
                        raw = dumps(obj)
                except _RowProblem as problem_:
                    reason = str(problem_)
                except json.JSONDecodeError as exc:
                    reason = f"not a JSON object: {exc.msg} at column {exc.colno}"
                except (ValueError, RecursionError) as exc:  # huge integer, absurd nesting
                    reason = f"not a JSON object: {one_line(exc)}"
                else:
                    # A complete object on a last line without a line break is kept: cutting
                    # an object's text always cuts its closing brace, so it cannot parse.
                    rows.append(values)
                    raws.append(raw)
                    row_lines.append(line)
                    if len(row_lines) >= _BLOCK_ROWS:
                        yield _slice(file, rows, raws, row_lines, bad_lines, bad_reasons, bad_raws)
                        rows, raws, row_lines = [], [], []
                        bad_lines, bad_reasons, bad_raws = [], [], []
                    continue
                if first_reason is None:
                    first_reason = reason
                if at == cut_at:
                    reason = f"{CUT_LAST_LINE}; {reason}"
                bad_lines.append(line)
                bad_reasons.append(reason)
                bad_raws.append(dumps({"line": text.rstrip("\r")}))  # raw is always an object
        if row_lines or bad_lines:
            yield _slice(file, rows, raws, row_lines, bad_lines, bad_reasons, bad_raws)
            rows, raws, row_lines = [], [], []
            bad_lines, bad_reasons, bad_raws = [], [], []
    if not parsed_any:
        first = (first_reason or "").removeprefix("not a JSON object: ")
        raise FileProblem(f"cannot parse as JSON Lines: line 1: {first}")
    return tuple(key for key, name in names.items() if name not in required)


def _slice(
    file: InboxFile,
    rows: list[list[str | None]],
    raws: list[str | None],
    row_lines: list[int],
    bad_lines: list[int | None],
    bad_reasons: list[str],
    bad_raws: list[str | None],
) -> FileSlice:
    rejected = rejections.build(
        kind=file.kind,
        source_file=file.source_file,
        line=bad_lines,
        reason=bad_reasons,
        raw=bad_raws,
    )
    table = _frame(file, rows, raws, row_lines) if row_lines else empty_rows(file.kind)
    return FileSlice(table, rejected)


def _frame(
    file: InboxFile, rows: list[list[str | None]], raws: list[str | None], lines: list[int]
) -> pl.DataFrame:
    height = len(lines)
    columns = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [
            pl.repeat(file.source_file, height, dtype=pl.String, eager=True).alias("source_file"),
            pl.Series("line", lines, dtype=pl.Int64),
            *(
                pl.Series(name, values, dtype=pl.String)
                for name, values in zip(REQUIRED_COLUMNS[file.kind], columns, strict=True)
            ),
            pl.Series("raw", raws, dtype=pl.String),
        ]
    )


def _register_keys(kind: Kind, row: dict[str, Any], names: dict[str, str]) -> str | None:
    """Record a row's keys; why the row is rejected if two keys mean the same column."""
    originals: dict[str, list[str]] = {}
    for key in row:
        name = names.get(key)
        if name is None:
            name = names[key] = normalise(kind, key)
        originals.setdefault(name, []).append(key)
    described = "; ".join(
        f"{name} (from {', '.join(_shown_key(key) for key in same)})"
        for name, same in originals.items()
        if len(same) > 1
    )
    if described:
        return f"duplicate keys once names are normalised: {described}"
    return optional_lookalike(kind, list(originals), [same[0] for same in originals.values()])


def _value_text(column: str | None, value: Any) -> str:
    """A JSON value that is not a string as text; ``column``: the required column it fills."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    if column is not None:  # a nested object or array is no sku, qty or date
        raise _RowProblem(
            f"{column} holds a JSON {_json_kind(value)}, not a value: send {column} as text "
            "or a number"
        )
    return dumps(value)  # nested list or object in an extra key: as JSON text


def _json_kind(value: Any) -> str:
    return "object" if isinstance(value, dict) else "array"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "found an array"
    if isinstance(value, str):
        return "found a string"
    if value is None:
        return "found null"
    if isinstance(value, bool):
        return "found a boolean"
    return "found a number"
