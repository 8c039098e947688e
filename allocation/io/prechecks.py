"""Validation's pre-checks: per column, the cast of a received string and the reason it failed.

Each builder returns a ``Precheck`` of polars expressions over a reader frame's column: the
stripped, typed value (null when the check fails), whether it failed, and the reason a person
reads ("qty 'ten' is not a whole number", "sku is empty"), null when the value passed.
``validation.py`` runs them before the pandera model, which then never sees a value it would have
to coerce, nor a null it would have to word (pandera's nullability has no words of its own).
"""

import datetime as dt
from typing import Final, NamedTuple

import polars as pl

from allocation.io import identifiers

#: A whole number in base 10 with an optional sign. ``[0-9]``, not ``\d``: polars' ``\d`` is
#: Unicode-aware and would let digits such as "٣" through the format check.
_WHOLE_NUMBER: Final = r"^[+-]?[0-9]+$"
_ISO_DATE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
#: A date written with a sign or more than four year digits (how polars writes a Parquet date
#: outside years 0-9999): a date, but never one in the accepted range.
_FAR_DATE: Final = r"^([+-][0-9]{4,}|[0-9]{5,})-[0-9]{2}-[0-9]{2}$"
_DATE_FORMAT: Final = "%Y-%m-%d"

#: The dates a manifest may give (README, "Inbox contract"). An eta is when a batch arrives:
#: years before 1900 or after 2999 are typos ("0202" for "2026"), and one would be taken for the
#: earliest (or latest) batch of its sku. The range also sits well inside what every place that
#: holds a date can hold (Python's `date`: years 1-9999, on which the allocation runs; polars,
#: DuckDB and Parquet hold more): a year-0 eta once passed the door and stopped every night with
#: an order for its sku ("year 0 is out of range").
EARLIEST_DATE: Final = dt.date(1900, 1, 1)
LATEST_DATE: Final = dt.date(2999, 12, 31)

#: Characters an identifier (sku, orderid, reference) may not hold: controls (tab, line breaks),
#: format characters (zero-width space and joiners, byte order mark, direction marks), private
#: use code points, and every space but the plain one (U+0020).
_INVISIBLE: Final = r"[\p{Cc}\p{Cf}\p{Co}\p{Zl}\p{Zp}\p{Zs}--[ ]]"
_INVISIBLE_SHOWN: Final = "<?>"

#: Values quoted in reasons are cut to this many characters (a reason is not a copy of ``raw``).
_MAX_SHOWN: Final = 40


class Precheck(NamedTuple):
    value: pl.Expr  # the typed value, null when the check failed (or nothing was given)
    #: Whether a value had to come out of the check (over the received column): the check
    #: failed where it did and `value` is null. Validation computes `value` once and reads the
    #: failures from its nulls (`failed`), rather than evaluating the cast a second time.
    required: pl.Expr
    reason: pl.Expr  # what a person reads, null when the value passed

    def failed(self, typed: pl.Expr) -> pl.Expr:
        """Where the check failed, given `typed`: the values `value` computed. Cheap: a reason
        is worded only for the rows where this is true."""
        return self.required & typed.is_null()


def shown(value: pl.Expr) -> pl.Expr:
    """``value`` cut to ``_MAX_SHOWN`` characters for quoting in a reason."""
    return (
        pl.when(value.str.len_chars() > _MAX_SHOWN)
        .then(pl.concat_str(value.str.slice(0, _MAX_SHOWN), pl.lit("…")))
        .otherwise(value)
    )


def present(column: str) -> Precheck:
    """A value the reader always gives (``source_file``, ``line``): null -> "<column> is missing"."""
    value = pl.col(column)
    return Precheck(
        value, pl.lit(True), pl.when(value.is_null()).then(pl.lit(f"{column} is missing"))
    )


def text(column: str) -> Precheck:
    """Stripped text in NFC (``identifiers``); null, empty or whitespace-only -> null and
    "<column> is empty". Text holding an invisible or control character (a zero-width space, a
    no-break space, a tab, a line break, a byte order mark, a private-use code point) or a
    compatibility character (fullwidth letters, ligatures) -> null: two skus that print alike
    must not be two skus."""
    stripped = pl.col(column).str.strip_chars()
    normal = identifiers.nfc_expr(stripped)
    invisible = stripped.str.contains(_INVISIBLE)
    plain = identifiers.compatibility_spelling_expr(stripped)
    # `normal` once: NFC never empties a value, and each mention is evaluated again.
    value = pl.when((stripped != "") & ~invisible & plain.is_null()).then(normal)
    marked = stripped.str.replace_all(_INVISIBLE, _INVISIBLE_SHOWN, literal=False)
    reason = (
        pl.when(stripped.is_null() | (stripped == ""))
        .then(pl.lit(f"{column} is empty"))
        .when(invisible)
        .then(
            pl.format(
                f"{column} '{{}}' holds an invisible or control character (shown as "
                f"{_INVISIBLE_SHOWN}): remove it",
                shown(marked),
            )
        )
        .when(plain.is_not_null())
        .then(
            pl.format(
                f"{column} '{{}}' holds a compatibility character (a fullwidth, ligature, "
                f"superscript or other variant form that prints like plain text): send it as "
                f"'{{}}'",
                shown(stripped),
                shown(identifiers.nfc_expr(plain)),
            )
        )
    )
    return Precheck(value, pl.lit(True), reason)


def whole_number(column: str) -> Precheck:
    """A base-10 integer that fits ``Int64``; anything else -> null and a reason."""
    stripped = pl.col(column).str.strip_chars()
    looks_whole = stripped.str.contains(_WHOLE_NUMBER)
    value = pl.when(looks_whole).then(stripped.cast(pl.Int64, strict=False))
    reason = (
        pl.when(stripped.is_null() | (stripped == ""))
        .then(pl.lit(f"{column} is empty"))
        .when(~looks_whole)
        .then(pl.format(f"{column} '{{}}' is not a whole number", shown(stripped)))
        .when(value.is_null())
        .then(pl.format(f"{column} '{{}}' is out of range", shown(stripped)))
    )
    return Precheck(value, pl.lit(True), reason)


def date(column: str) -> Precheck:
    """An optional ``YYYY-MM-DD`` calendar date from ``EARLIEST_DATE`` to ``LATEST_DATE``;
    null/empty -> null without a reason."""
    stripped = pl.col(column).str.strip_chars()
    given = stripped.is_not_null() & (stripped != "")
    # The regex pins the form (polars alone parses "2026-1-5"); the parse rejects "2026-02-30".
    parsed = stripped.str.to_date(_DATE_FORMAT, strict=False)
    iso = given & stripped.str.contains(_ISO_DATE)
    in_range = parsed.is_between(pl.lit(EARLIEST_DATE), pl.lit(LATEST_DATE))
    value = pl.when(iso & in_range).then(parsed)
    out_of_range = (iso & parsed.is_not_null()) | stripped.str.contains(_FAR_DATE)
    reason = (
        pl.when(given & value.is_null() & out_of_range)
        .then(
            pl.format(
                f"{column} '{{}}' is outside the accepted dates {EARLIEST_DATE} to "
                f"{LATEST_DATE}: a typo?",
                shown(stripped),
            )
        )
        .when(given & value.is_null())
        .then(pl.format(f"{column} '{{}}' is not a date (expected YYYY-MM-DD)", shown(stripped)))
    )
    return Precheck(value, given, reason)
