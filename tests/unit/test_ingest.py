"""Sorting tonight's rows into new, duplicate, conflicting and changed: pure frames, no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allocation.io import ingest
from allocation.io.ingest import classify_batches, classify_orders


def orders(*rows: tuple[str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [("orders/a.csv", i + 1, o, s, q, "{}") for i, (o, s, q) in enumerate(rows)],
        schema={
            "source_file": pl.String,
            "line": pl.Int64,
            "orderid": pl.String,
            "sku": pl.String,
            "qty": pl.Int64,
            "raw": pl.String,
        },
        orient="row",
    )


def known_lines(*rows: tuple[str, str, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [(o, s, q, dt.date(2026, 11, 24), "orders/old.csv", 7) for o, s, q in rows],
        schema={
            "orderid": pl.String,
            "sku": pl.String,
            "known_qty": pl.Int64,
            "known_date": pl.Date,
            "known_file": pl.String,
            "known_line": pl.Int64,
        },
        orient="row",
    )


def batches(*rows: tuple[str, str, int, dt.date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [("batches/a.csv", i + 1, r, s, q, e, "{}") for i, (r, s, q, e) in enumerate(rows)],
        schema={
            "source_file": pl.String,
            "line": pl.Int64,
            "reference": pl.String,
            "sku": pl.String,
            "qty": pl.Int64,
            "eta": pl.Date,
            "raw": pl.String,
        },
        orient="row",
    )


def known_batches(*rows: tuple[str, str, int, dt.date | None]) -> pl.DataFrame:
    return pl.DataFrame(
        [(r, s, q, e, dt.date(2026, 11, 24), "batches/old.csv", 3) for r, s, q, e in rows],
        schema={
            "reference": pl.String,
            "known_sku": pl.String,
            "known_qty": pl.Int64,
            "known_eta": pl.Date,
            "known_date": pl.Date,
            "known_file": pl.String,
            "known_line": pl.Int64,
        },
        orient="row",
    )


def test_first_arrival_of_a_line_is_new_and_repeats_are_duplicates() -> None:
    result = classify_orders(
        orders(("o1", "RETRO-CLOCK", 2), ("o1", "RETRO-CLOCK", 2), ("o1", "SMALL-TABLE", 2)),
        known_lines(),
    )
    assert result.new["sku"].to_list() == ["RETRO-CLOCK", "SMALL-TABLE"]
    assert result.duplicates == 1
    assert result.rejected.height == 0


def test_a_different_qty_tonight_is_rejected_naming_the_first_row() -> None:
    result = classify_orders(
        orders(("o1", "RETRO-CLOCK", 2), ("o1", "RETRO-CLOCK", 3)), known_lines()
    )
    assert result.new.height == 1
    [reason] = result.rejected["reason"].to_list()
    assert reason == (
        "order o1 sku RETRO-CLOCK with qty 3 conflicts with the line received in "
        "orders/a.csv line 1 with qty 2"
    )
    assert result.rejected["line"].to_list() == [2]


def test_a_line_known_from_an_earlier_night_is_a_duplicate_or_a_conflict() -> None:
    result = classify_orders(
        orders(("o1", "RETRO-CLOCK", 2), ("o2", "RETRO-CLOCK", 5)),
        known_lines(("o1", "RETRO-CLOCK", 2), ("o2", "RETRO-CLOCK", 4)),
    )
    assert result.new.height == 0
    assert result.duplicates == 1
    [reason] = result.rejected["reason"].to_list()
    assert (
        "conflicts with the line received on 2026-11-24 (orders/old.csv line 7) with qty 4"
        in reason
    )


def test_lines_whose_keys_share_a_hash_are_still_told_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    night = orders(
        ("o1", "RETRO-CLOCK", 2),
        ("o2", "RETRO-CLOCK", 1),
        ("o1", "RETRO-CLOCK", 2),
        ("o3", "SMALL-TABLE", 4),
        ("o1", "RETRO-CLOCK", 3),
        ("o4", "SMALL-TABLE", 1),
    )
    known = known_lines(("o3", "SMALL-TABLE", 4))
    expected = classify_orders(night, known)
    # Every key hashes alike: every row takes the exact path, and the answer does not change.
    monkeypatch.setattr(ingest, "key_hash", lambda: pl.col("orderid").str.len_bytes() * 0)
    alike = classify_orders(night, known)

    assert alike.new["orderid"].to_list() == expected.new["orderid"].to_list() == ["o1", "o2", "o4"]
    assert alike.duplicates == expected.duplicates == 2
    assert alike.rejected.rows() == expected.rejected.rows()
    assert alike.rejected["line"].to_list() == [5]


def test_new_batches_updates_and_duplicates_in_arrival_order() -> None:
    eta = dt.date(2026, 12, 1)
    result = classify_batches(
        batches(
            ("b1", "RETRO-CLOCK", 5, None),
            ("b1", "RETRO-CLOCK", 5, None),
            ("b1", "RETRO-CLOCK", 7, None),
            ("b2", "SMALL-TABLE", 1, eta),
            ("b2", "SMALL-TABLE", 1, None),
        ),
        known_batches(("b2", "SMALL-TABLE", 1, eta)),
    )
    assert result.new["reference"].to_list() == ["b1"]
    assert result.duplicates == 2
    assert result.updates.select("reference", "qty", "old_qty", "eta", "old_eta").rows() == [
        ("b1", 7, 5, None, None),
        ("b2", 1, 1, None, eta),
    ]


def test_a_batch_row_with_another_sku_is_rejected_and_does_not_disturb_the_rest() -> None:
    result = classify_batches(
        batches(("b1", "SMALL-TABLE", 5, None), ("b1", "RETRO-CLOCK", 9, None)),
        known_batches(("b1", "RETRO-CLOCK", 5, None)),
    )
    [reason] = result.rejected["reason"].to_list()
    assert reason.startswith("batch b1 has sku RETRO-CLOCK (received on 2026-11-24")
    assert "a batch cannot change sku (got SMALL-TABLE)" in reason
    assert result.updates.select("qty", "old_qty").rows() == [(9, 5)]


def received(*rows: tuple[str, str, int, dt.date | None, int]) -> pl.DataFrame:
    return pl.DataFrame(
        [("batches/a.csv", r, s, q, e, n) for r, s, q, e, n in rows],
        schema={
            "source_file": pl.String,
            "reference": pl.String,
            "sku": pl.String,
            "qty": pl.Int64,
            "eta": pl.Date,
            "times": pl.Int64,
        },
        orient="row",
    )


def test_rows_a_file_already_delivered_are_duplicates_and_change_nothing() -> None:
    # a.csv delivered b1 with 1 (in stock), then 4; read again it changes nothing, though the
    # batch is at 4 now and the first row says 1.
    result = classify_batches(
        batches(("b1", "LAMP", 1, None), ("b1", "LAMP", 4, None)),
        known_batches(("b1", "LAMP", 4, None)),
        received(("b1", "LAMP", 1, None, 1), ("b1", "LAMP", 4, None, 1)),
    )
    assert (result.duplicates, result.updates.height, result.new.height) == (2, 0, 0)
    assert result.received.height == 0


def test_a_row_delivered_more_often_than_before_is_news() -> None:
    # a.csv grew: its third row goes back to 1, which that file said once before, not twice.
    result = classify_batches(
        batches(("b1", "LAMP", 1, None), ("b1", "LAMP", 4, None), ("b1", "LAMP", 1, None)),
        known_batches(("b1", "LAMP", 4, None)),
        received(("b1", "LAMP", 1, None, 1), ("b1", "LAMP", 4, None, 1)),
    )
    assert result.duplicates == 2
    assert result.updates.select("line", "qty", "old_qty").rows() == [(3, 1, 4)]
    assert result.received.select("line", "qty").rows() == [(3, 1)]


def test_every_row_of_a_file_loaded_before_byte_for_byte_is_a_duplicate() -> None:
    result = classify_batches(
        batches(("b1", "LAMP", 1, None), ("b1", "LAMP", 4, None)),
        known_batches(("b1", "LAMP", 4, None)),
        received(),
        redelivered=["batches/a.csv"],
    )
    assert (result.duplicates, result.updates.height) == (2, 0)


Row = tuple[str, int, str, str, int, dt.date | None]  # source_file, line, reference, sku, qty, eta


@dataclass
class ManifestAnswer:
    """What `classify_batches` decides, as plain rows in arrival order."""

    new: list[Row] = field(default_factory=list)
    updates: list[tuple[Row, int, dt.date | None]] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[tuple[str, int, str]] = field(default_factory=list)  # source_file, line, reason
    received: list[Row] = field(default_factory=list)


def manifest_rule(
    tonight: list[Row],
    known: dict[str, tuple[str, int, dt.date | None]],
    times: dict[tuple[str, str, str, int, dt.date | None], int],
    redelivered: set[str],
) -> ManifestAnswer:
    """The inbox contract's manifest rule, row by row in plain Python: the test's oracle.
    `known`: reference -> (sku, qty, eta) of the warehouse's batch (received on 2026-11-24 in
    batches/old.csv line 3, as `known_batches` says). `times`: how often each manifest row
    (file, reference, sku, qty, eta) was received before."""
    answer = ManifestAnswer()
    occurrences: dict[tuple[str, str, str, int, dt.date | None], int] = {}
    first: dict[str, Row] = {}  # each reference's first row tonight not received before
    last: dict[str, tuple[int, dt.date | None]] = {}  # its latest kept qty and eta tonight
    for row in tonight:
        source_file, line, reference, sku, qty, eta = row
        key = (source_file, reference, sku, qty, eta)
        occurrences[key] = occurrences.get(key, 0) + 1
        if occurrences[key] <= times.get(key, 0) or source_file in redelivered:
            answer.duplicates += 1
            continue
        first.setdefault(reference, row)
        if reference in known:
            its_sku = known[reference][0]
            where = "received on 2026-11-24 (batches/old.csv line 3)"
        else:
            its_sku = first[reference][3]
            where = f"received in {first[reference][0]} line {first[reference][1]}"
        if sku != its_sku:
            reason = (
                f"batch {reference} has sku {its_sku} ({where}); a batch cannot change sku "
                f"(got {sku})"
            )
            answer.rejected.append((source_file, line, reason))
            continue
        answer.received.append(row)
        previous = last.get(reference) or (known[reference][1:] if reference in known else None)
        last[reference] = (qty, eta)
        if previous is None:
            answer.new.append(row)
        elif previous == (qty, eta):
            answer.duplicates += 1
        else:
            answer.updates.append((row, *previous))
    return answer


MANIFEST_ROW_VALUES = st.tuples(
    st.sampled_from(["batches/a.csv", "batches/b.csv"]),
    st.sampled_from(["b1", "b2", "b3"]),
    st.sampled_from(["LAMP", "RETRO-CLOCK"]),
    st.integers(0, 2),
    st.sampled_from([None, dt.date(2026, 12, 1), dt.date(2026, 12, 9)]),
)


@settings(max_examples=150, deadline=None)
@given(
    tonight=st.lists(MANIFEST_ROW_VALUES, max_size=12),
    known=st.lists(
        st.tuples(
            st.sampled_from(["b1", "b2", "b3"]),
            st.sampled_from(["LAMP", "RETRO-CLOCK"]),
            st.integers(0, 2),
            st.sampled_from([None, dt.date(2026, 12, 1)]),
        ),
        max_size=3,
        unique_by=lambda row: row[0],
    ),
    before=st.lists(
        st.tuples(MANIFEST_ROW_VALUES, st.integers(1, 2)), max_size=4, unique_by=lambda r: r[0]
    ),
    redelivered=st.sets(st.sampled_from(["batches/a.csv", "batches/b.csv"]), max_size=1),
)
def test_any_manifest_is_classified_as_the_rule_says_row_by_row(
    tonight: list[tuple[str, str, str, int, dt.date | None]],
    known: list[tuple[str, str, int, dt.date | None]],
    before: list[tuple[tuple[str, str, str, int, dt.date | None], int]],
    redelivered: set[str],
) -> None:
    rows = [(f, i + 1, r, s, q, e) for i, (f, r, s, q, e) in enumerate(tonight)]
    got = classify_batches(
        pl.DataFrame([(*row, None) for row in rows], schema=batches().schema, orient="row"),
        known_batches(*known),
        pl.DataFrame(
            [(*row, times) for row, times in before], schema=received().schema, orient="row"
        ),
        redelivered,
    )

    expected = manifest_rule(
        rows, {r: (s, q, e) for r, s, q, e in known}, dict(before), redelivered
    )
    columns = ["source_file", "line", "reference", "sku", "qty", "eta"]
    assert got.new.select(columns).rows() == expected.new
    assert got.updates.select(*columns, "old_qty", "old_eta").rows() == [
        (*row, old_qty, old_eta) for row, old_qty, old_eta in expected.updates
    ]
    assert got.duplicates == expected.duplicates
    assert got.rejected.select("source_file", "line", "reason").rows() == expected.rejected
    assert got.received.select(columns).rows() == expected.received
