"""Many small files cost what their rows cost (issue 23: 5,000 files of 2 rows took 117 s).

Validating a frame and appending it to the staging file cost ~20 ms each whatever the frame's
size, once per file. The guard counts that work, not time: small files of one kind are
validated and staged together, in groups of at most `file_groups.GROUP_ROWS` rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import polars as pl
import pytest

from allocation.io import staging
from allocation.service import file_groups
from conftest import Site

DAY = "2026-11-26"


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts validation calls per kind and staging appends per table."""
    counted: Counter[str] = Counter()
    for kind, validate in list(file_groups.VALIDATORS.items()):

        def counting(rows: pl.DataFrame, kind: str = kind, validate: Callable = validate):  # type: ignore[no-untyped-def,type-arg]
            counted[f"validate {kind}"] += 1
            return validate(rows)

        monkeypatch.setitem(file_groups.VALIDATORS, kind, counting)
    add = staging.StagingWriter.add

    def counting_add(self: staging.StagingWriter, table: str, frame: pl.DataFrame) -> None:
        if frame.height:
            counted[f"stage {table}"] += 1
        add(self, table, frame)

    monkeypatch.setattr(staging.StagingWriter, "add", counting_add)
    return counted


def test_small_files_are_validated_and_staged_once_per_kind(site: Site, work: Counter[str]) -> None:
    for i in range(3):
        site.batches(f"m{i}.csv", f"B-{i},LAMP,100,")
    for i in range(120):
        site.orders(f"o{i:03d}.csv", f"o{i},LAMP,1", f"p{i},LAMP,1")

    result = site.run(DAY)

    assert result["orders"]["accepted"] == 240
    assert result["files"]["received"] == 123
    assert work == {
        "validate batches": 1,
        "stage batches": 1,
        "validate orders": 1,
        "stage orders": 1,
    }


def test_a_group_holds_at_most_group_rows(
    site: Site, work: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_groups, "GROUP_ROWS", 50)
    for i in range(60):
        site.orders(f"o{i:03d}.csv", f"o{i},LAMP,1", f"p{i},LAMP,1")

    result = site.run(DAY)

    assert result["orders"]["received"] == 120
    assert work["validate orders"] == 3  # 50 + 50 + 20 rows (25 files each, then 10)


def test_grouped_files_keep_every_rejection_with_its_file_and_line(site: Site) -> None:
    site.batches("m1.csv", "B-LAMP,LAMP,100,")
    site.orders("o1.csv", "o1,LAMP,1", "o2,LAMP,ten")
    site.orders("o2.csv", "o3,LAMP,1,extra", "o4,,1")  # a ragged row (reader), an empty sku
    site.orders("o3.csv", "o5,LAMP,1")
    site.write("orders/o4.csv", "")  # rejected whole

    result = site.run(DAY)

    assert sorted(site.query("SELECT source_file, line FROM rejected_rows")) == [
        ("orders/o1.csv", 2),
        ("orders/o2.csv", 1),
        ("orders/o2.csv", 2),
        ("orders/o4.csv", None),
    ]
    orders = result["orders"]
    assert (orders["received"], orders["accepted"], orders["rejected"]) == (5, 2, 3)
    assert site.query("SELECT orderid FROM order_lines ORDER BY arrival_seq") == [("o1",), ("o5",)]
