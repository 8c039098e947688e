"""A file's column names mapped to the required columns (CSV header, Parquet and JSON keys)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from allocation.io.schemas import REQUIRED_COLUMNS, Kind

# Required columns that may be absent from a file's header: the column is then all null
# (for batches, a missing ``eta`` column means every batch is in stock).
OPTIONAL_COLUMNS: Final[dict[Kind, frozenset[str]]] = {
    "orders": frozenset(),
    "batches": frozenset({"eta"}),
}
# Words in a column name that say it holds an optional column under another spelling (``ETA
# Date``, ``eta_date``, ``expectedArrival``, ``due``). Such a file is rejected rather than read
# without the optional column: for batches that would put every batch in stock now.
LOOKALIKE_WORDS: Final[dict[str, frozenset[str]]] = {
    "eta": frozenset({"eta", "etadate", "arrival", "arrives", "arriving", "due"}),
}
# Applied after stripping and lower-casing a header name.
COLUMN_ALIASES: Final[dict[Kind, dict[str, str]]] = {
    "batches": {"ref": "reference"},
    "orders": {},
}


@dataclass(frozen=True)
class Header:
    keys: tuple[str, ...]  # per file column: its name in ``raw`` (the original name)
    sources: tuple[int | None, ...]  # per required column: file column index, None = absent
    extra: tuple[str, ...]  # original names of the file columns not used


def normalise(kind: Kind, name: str) -> str:
    """A column name as matched against the required ones: stripped, lower case, aliased."""
    key = name.strip().lower()
    return COLUMN_ALIASES[kind].get(key, key)


def map_header(kind: Kind, names: Sequence[str]) -> Header | str:
    """Map a file's column names to the required columns, or say why the file is rejected."""
    # A blank header cell (e.g. Excel's trailing empty columns) gets a positional name so that
    # its values still have a key in ``raw``.
    keys = tuple(name if name.strip() else f"column_{i}" for i, name in enumerate(names, 1))
    normalised = [normalise(kind, key) for key in keys]
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
    lookalike = optional_lookalike(kind, normalised, keys)
    if lookalike is not None:
        return lookalike
    sources = tuple(positions[c][0] if c in positions else None for c in required)
    extra = tuple(keys[i] for i, norm in enumerate(normalised) if norm not in required)
    return Header(keys=keys, sources=sources, extra=extra)


def _words(name: str) -> set[str]:
    """A column name's words, lower case: split at anything not a letter or digit, and where
    a lower-case letter meets an upper-case one (``etaDate``)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return set(re.findall(r"[a-z0-9]+", spaced.lower()))


def optional_lookalike(
    kind: Kind, normalised: Iterable[str], originals: Sequence[str]
) -> str | None:
    """Why the columns are refused when an optional column is missing and another column looks
    like it under another name (``ETA Date`` for ``eta``), or None."""
    names = list(normalised)
    for column in sorted(OPTIONAL_COLUMNS[kind]):
        if column in names:
            continue
        for original in originals:
            if _words(original) & LOOKALIKE_WORDS.get(column, frozenset()):
                return (
                    f"column {original.strip()!r} looks like the optional column {column} under "
                    f"another name, and there is no {column} column: the rows would be read "
                    f"with no {column} (for batches: every batch in stock now). Name the "
                    f"column {column} (any case), or leave it out when no row has one"
                )
    return None
