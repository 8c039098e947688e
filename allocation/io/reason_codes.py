"""Stable codes for rejection reasons: analysts group by ``rejected_rows.reason_code``, people read
``reason``.

A reason is worded where the rejection is found (a reader, validation, classification) and may
quote the bad value ("qty 'ten' is not a whole number"); its code is the first pattern below that
the reason matches, matched once in SQL when a night's rows are stored. A row rejected for several
reasons ("qty is empty; sku is empty") gets the code of the first. The list is the documented one
(docs/analysts.md, "Reason codes"): a code is never renamed; a new kind of rejection adds a code.
"""

from __future__ import annotations

from typing import Final

#: (code, regular expression searched in the reason, what it means), first match wins.
REASON_CODES: Final[tuple[tuple[str, str, str], ...]] = (
    (
        "file_name_not_utf8",
        r"^file name is not valid UTF-8",
        "The file's name is not valid UTF-8; the file is not read until renamed.",
    ),
    (
        "not_utf8",
        r"^not valid UTF-8",
        "A byte of the file is not UTF-8 (another encoding): the file is rejected whole.",
    ),
    ("not_text", r"^not a text file", "Binary content where a text file was expected."),
    (
        "not_regular_file",
        r"^not a regular file|^is not a folder",
        "Not a regular file (a device, pipe, socket) or a folder where files were expected.",
    ),
    (
        "missing_column",
        r"^missing required column",
        "The header lacks a required column: the file is rejected whole.",
    ),
    (
        "duplicate_column",
        r"^duplicate column name",
        "The header names a column twice: the file is rejected whole.",
    ),
    ("empty_file", r"^empty file", "The file has no header row."),
    (
        "nested_column",
        r"cannot be turned into text",
        "A Parquet column the pipeline uses holds lists or structs.",
    ),
    (
        "unreadable_file",
        r"^cannot (read|parse|list)",
        "The file cannot be read or parsed at all (the reason quotes the reader's error).",
    ),
    (
        "lone_surrogate",
        r"lone UTF-16 surrogate",
        "A JSON Lines row holds half an emoji (a lone surrogate escape).",
    ),
    ("key_twice", r"is given twice", "A JSON object gives one key twice."),
    (
        "nested_value",
        r"holds a JSON (object|array)",
        "A required value is a JSON object or array.",
    ),
    ("not_json_object", r"^not a JSON object", "A JSON Lines row is not a JSON object."),
    (
        "invisible_character",
        r"invisible or control character",
        "An identifier holds an invisible or control character.",
    ),
    (
        "unclosed_quote",
        r"quote opening field",
        "A CSV quote is not closed on its line and swallowed the next lines.",
    ),
    (
        "field_count",
        r"^row has \d+ fields?, header has",
        "A CSV row has another number of fields than the header.",
    ),
    ("empty_value", r"^\w+ is (empty|missing)", "A required value is empty or missing."),
    ("not_whole_number", r"is not a whole number", "A quantity is not a whole number."),
    ("out_of_range", r"is out of range", "A number or date is outside the range accepted."),
    ("qty_below_one", r"must be at least 1", "An order line's qty is below 1."),
    ("negative_qty", r"must not be negative", "A batch's qty is negative."),
    ("not_a_date", r"is not a date", "An eta is not a YYYY-MM-DD calendar date."),
    (
        "conflicting_line",
        r"conflicts with",
        "An order line (orderid, sku) known with another qty.",
    ),
    ("batch_sku_change", r"cannot change sku", "A known batch reference given with another sku."),
)

#: The code of a reason no pattern matches (a test keeps every reason the pipeline words matched).
OTHER: Final = "other"

#: Every code, in the documented order, ``other`` last.
CODES: Final[tuple[str, ...]] = (*(code for code, _pattern, _meaning in REASON_CODES), OTHER)


def code_sql(reason: str = "reason") -> tuple[str, list[str]]:
    """A SQL expression giving the code of column ``reason``, and its parameters (the patterns
    and codes bind as values; only the column name, a constant of ours, is in the text)."""
    whens = " ".join("WHEN regexp_matches(" + reason + ", ?) THEN ?" for _ in REASON_CODES)
    params = [value for code, pattern, _ in REASON_CODES for value in (pattern, code)]
    return f"CASE {whens} ELSE ? END", [*params, OTHER]
