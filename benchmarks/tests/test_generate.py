"""The benchmark's inbox generator (benchmarks/generate.py): its two shapes as documented."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from benchmarks.generate import generate, sku_count


def read(inbox: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    orders = pl.read_csv(sorted((inbox / "orders").glob("*.csv")))
    batches = pl.read_csv(sorted((inbox / "batches").glob("*.csv")))
    return orders, batches


def test_the_uniform_shape_has_one_sku_per_100_lines_and_1_to_3_batches_each(
    tmp_path: Path,
) -> None:
    made = generate(20_000, tmp_path / "inbox", seed=7, shape="uniform")
    orders, batches = read(made.path)
    assert made.skus == 200 == sku_count(20_000, "uniform")
    assert orders.height == 20_000
    assert orders["sku"].n_unique() == 200
    per_sku = batches.group_by("sku").len()["len"]
    assert per_sku.min() == 1 and per_sku.max() == 3
    assert batches["sku"].n_unique() == 200
    lines_per_sku = orders.group_by("sku").len()["len"]
    assert lines_per_sku.min() >= 50 and lines_per_sku.max() <= 160  # about 100 each


def test_the_uniform_shape_is_not_capped_at_100000_skus() -> None:
    assert sku_count(30_000_000, "uniform") == 300_000
    assert sku_count(30_000_000, "zipf") == 100_000


def test_the_same_seed_gives_the_same_files_and_another_seed_others(tmp_path: Path) -> None:
    first = generate(5_000, tmp_path / "a", seed=3, shape="uniform").path
    again = generate(5_000, tmp_path / "b", seed=3, shape="uniform").path
    other = generate(5_000, tmp_path / "c", seed=4, shape="uniform").path
    for kind in ("orders", "batches"):
        names = sorted(p.name for p in (first / kind).iterdir())
        assert names == sorted(p.name for p in (again / kind).iterdir())
        for name in names:
            assert (first / kind / name).read_bytes() == (again / kind / name).read_bytes()
    assert read(first)[0]["sku"].to_list() != read(other)[0]["sku"].to_list()


@pytest.mark.parametrize("shape", ["zipf", "uniform"])
def test_the_hottest_skus_share_is_what_the_files_hold(tmp_path: Path, shape: str) -> None:
    made = generate(30_000, tmp_path / "inbox", seed=42, shape=shape)  # type: ignore[arg-type]
    orders, _ = read(made.path)
    assert made.hot_share == orders.group_by("sku").len()["len"].max() / orders.height


def test_the_zipf_hot_sku_holds_about_one_line_in_h_of_skus(tmp_path: Path) -> None:
    made = generate(20_000, tmp_path / "inbox", seed=42, shape="zipf")
    harmonic = sum(1 / k for k in range(1, made.skus + 1))
    assert made.hot_share == pytest.approx(1 / harmonic, rel=0.1)  # 200 skus: ~17 %
    uniform = generate(20_000, tmp_path / "flat", seed=42, shape="uniform")
    assert uniform.hot_share < 0.01 < made.hot_share


def test_an_unknown_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="zipf, uniform"):
        generate(100, tmp_path / "inbox", shape="normal")  # type: ignore[arg-type]


def test_a_later_night_restocks_only_the_share_of_skus_asked_with_the_same_stock(
    tmp_path: Path,
) -> None:
    every = generate(20_000, tmp_path / "every", seed=5, shape="uniform", night=3)
    some = generate(20_000, tmp_path / "some", seed=5, shape="uniform", night=3, restock=0.1)
    first = generate(20_000, tmp_path / "first", seed=5, shape="uniform", restock=0.1)
    restocked = read(some.path)[1]
    assert read(every.path)[1]["sku"].n_unique() == 200
    assert 8 <= restocked["sku"].n_unique() <= 35  # about a tenth of 200
    assert read(first.path)[1]["sku"].n_unique() == 200  # a first night stocks every sku
    everything = read(every.path)[1]["qty"].sum()
    assert 0.5 * everything < restocked["qty"].sum() < 2 * everything
    with pytest.raises(ValueError, match="share of the skus"):
        generate(100, tmp_path / "none", restock=0.0)


def test_the_batches_hold_the_share_of_each_skus_demand_asked(tmp_path: Path) -> None:
    """`stock=1.0` holds a sequence's backlog about steady; the default 0.9 grows it."""
    for stock in (0.9, 1.0):
        made = generate(20_000, tmp_path / f"stock-{stock}", seed=5, shape="uniform", stock=stock)
        orders, batches = read(made.path)
        demand = orders.group_by("sku").agg(pl.col("qty").sum().alias("demand"))
        held = batches.group_by("sku").agg(pl.col("qty").sum().alias("held"))
        both = demand.join(held, on="sku")
        assert both.height == 200
        assert (both["held"] <= both["demand"] * stock).all()
        assert (both["held"] >= both["demand"] * stock - 1).all()  # rounded down, whole units
    with pytest.raises(ValueError, match="share of the demand"):
        generate(100, tmp_path / "none", stock=0.0)
