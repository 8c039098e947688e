"""A file's column names mapped to the required columns (CSV header, Parquet and JSON keys)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from allocation.io.schemas import REQUIRED_COLUMNS, Kind

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
    sources = tuple(positions[c][0] if c in positions else None for c in required)
    extra = tuple(keys[i] for i, norm in enumerate(normalised) if norm not in required)
    return Header(keys=keys, sources=sources, extra=extra)
