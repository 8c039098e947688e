"""Identifiers in one Unicode form (allocation/io/identifiers.py): what folds, what is refused."""

from __future__ import annotations

import unicodedata

import polars as pl

from allocation.io.identifiers import compatibility_spelling, nfc


def test_canonical_twins_fold_to_one_spelling_and_nulls_stay_null() -> None:
    received = pl.Series(
        [
            unicodedata.normalize("NFD", "ÉTAGÈRE"),
            "\u212aELVIN",  # Kelvin sign
            "\u2126-RESISTOR",  # Ohm sign
            unicodedata.normalize("NFD", "한국"),  # Hangul sent as jamo
            None,
            "LAMP",
        ]
    )

    assert nfc(received).to_list() == ["ÉTAGÈRE", "KELVIN", "Ω-RESISTOR", "한국", None, "LAMP"]


def test_only_compatibility_characters_get_a_plain_spelling() -> None:
    received = pl.Series(["ＬＡＭＰ", "ﬁLE", "M²", "10µF", "ÉTAGÈRE", "\u212aELVIN", "LAMP", None])

    assert compatibility_spelling(received).to_list() == [
        "LAMP",
        "fiLE",
        "M2",
        "10μF",
        None,  # NFC already: a letter of its own
        None,  # the Kelvin sign is folded by NFC, accepted as K
        None,
        None,
    ]
