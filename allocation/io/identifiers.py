"""Identifiers (``orderid``, ``sku``, ``reference``) in one Unicode form: two that print alike
must not be two identifiers.

Every identifier is stored in NFC (canonical composition): ``ÉTAGÈRE`` sent as ``E`` + U+0301
(NFD, as macOS file systems and some exporters write it) is the same sku as the precomposed
``É``, and canonical singletons fold too: the Kelvin sign U+212A is ``K``, the Ohm sign U+2126
is ``Ω``. NFC changes no character a person would tell apart, so an identifier that changes
under it is accepted in its NFC form (its ``raw`` keeps the spelling received).

Compatibility characters (fullwidth ``ＬＡＭＰ``, ligatures ``ﬁ``, superscripts ``²``, the
micro sign ``µ``) are the ones only NFKC folds. NFKC is lossy (``M²`` becomes ``M2``, ``½``
becomes ``1⁄2``), so folding them silently could merge two skus a supplier meant as different,
and keeping them would leave an order waiting beside stock it cannot see: a value holding one is
rejected, naming the plain spelling to send (``compatibility_spelling``).

ASCII text (nearly every identifier) is its own NFC and NFKC: only the other values are
normalised: normalising every value would cost seconds of CPU on a big night
(docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Final

import polars as pl

#: The one form identifiers are stored and compared in.
FORM: Final = "NFC"
#: The identifier columns of the inbox files.
IDENTIFIERS: Final = ("orderid", "sku", "reference")


def _not_ascii(values: pl.Series) -> pl.Series:
    """Where a value holds a character outside ASCII (more bytes than characters)."""
    return (values.str.len_bytes() != values.str.len_chars()).fill_null(False)


def nfc(values: pl.Series) -> pl.Series:
    """``values`` in NFC (nulls stay null)."""
    where = _not_ascii(values)
    if not where.any():
        return values
    rows = where.arg_true()
    return values.scatter(rows, values.gather(rows).str.normalize(FORM))


def compatibility_spelling(values: pl.Series) -> pl.Series:
    """The NFKC spelling of each value that holds a compatibility character (one NFKC changes
    but NFC does not); null for every other value."""
    spelling = pl.Series(values.name, [None] * values.len(), dtype=pl.String)
    where = _not_ascii(values)
    if not where.any():
        return spelling
    rows = where.arg_true()
    some = values.gather(rows)
    folded = some.str.normalize("NFKC")
    differs = (folded != some.str.normalize(FORM)).fill_null(False)
    return spelling.scatter(rows.filter(differs), folded.filter(differs))


def nfc_expr(column: pl.Expr) -> pl.Expr:
    """``nfc`` as an expression over one column."""
    return column.map_batches(nfc, return_dtype=pl.String)


def compatibility_spelling_expr(column: pl.Expr) -> pl.Expr:
    """``compatibility_spelling`` as an expression over one column."""
    return column.map_batches(compatibility_spelling, return_dtype=pl.String)
