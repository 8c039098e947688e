"""A deterministic inbox of any size for the benchmarks.

    python -m benchmarks.generate --lines 1000000 --out /tmp/inbox [--seed 42]
                                  [--shape zipf|uniform] [--skus N]

The same seed, size and shape always give the same files (Python's ``random.Random``, no
hashing that could change between library versions). Two shapes:

* ``zipf`` (the default, issue 6's shape): one sku per 100 lines, at least 100 and at most
  100,000; popularity is skewed (Zipf, s=1: the k-th sku is ordered about 1/k as often as the
  first, so the hottest sku holds 1/H(skus) of the lines: ~10 % at 1M lines, ~8.3 % from 10M,
  where the sku count stops growing); 1-4 batches per sku;
* ``uniform`` (issue 14): one sku per 100 lines, however many lines, every sku equally likely
  (about 100 lines each, the hottest ~0.01-0.1 %); 1-3 batches per sku.

Both: one line per (orderid, sku), 1-10 units, in files of at most 1,000,000 lines
(``orders/<date>-part-NNN.csv``); the first batch in stock for about half of the skus, the
others with distinct ETAs; the stock of a sku is a bit short of its demand (90 %) so some lines
go out of stock.

Plain CSV without quote characters, as most exports are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import polars as pl

BUSINESS_DATE = dt.date(2026, 11, 26)
FILE_LINES = 1_000_000
STOCK_SHARE = 0.9
Shape = Literal["zipf", "uniform"]
SHAPES: tuple[Shape, ...] = get_args(Shape)
MAX_BATCHES: dict[Shape, int] = {"zipf": 4, "uniform": 3}


@dataclass(frozen=True)
class Generated:
    """What was written: the inbox folder and the figures the benchmark table reports."""

    path: Path
    lines: int
    skus: int
    shape: Shape
    hot_share: float  # the hottest sku's share of the night's lines


def sku_count(lines: int, shape: Shape = "zipf") -> int:
    if shape == "uniform":
        return max(1, lines // 100)
    return max(100, min(100_000, lines // 100))


def business_date(night: int = 0) -> dt.date:
    """The business date of the `night`-th night of a sequence (0: the single night's)."""
    return BUSINESS_DATE + dt.timedelta(days=night)


def generate(
    lines: int,
    out: Path,
    seed: int = 42,
    skus: int | None = None,
    shape: Shape = "zipf",
    night: int = 0,
    restock: float = 1.0,
    stock: float = STOCK_SHARE,
) -> Generated:
    """Writes ``out/batches/`` and ``out/orders/``. ``skus`` overrides the shape's default of
    one sku per 100 lines. ``night`` > 0 makes the inbox of a later night of a sequence on one
    warehouse (`benchmarks.nights`): the same skus, new order ids and batch references, files
    named for that night's date, its own seed; its batches cover 90 % of that night's demand,
    so the lines left waiting from earlier nights (allocated first) make the backlog grow.
    ``restock`` < 1 gives a later night's batches to that share of the skus only (drawn
    anew each night), each getting its demand's stock ÷ ``restock``: the same stock in all,
    as a real feed restocks some skus a night, not every one. ``stock``: the share of each sku's
    demand its batches hold (``STOCK_SHARE``, 0.9, by default: a sequence's backlog grows by a
    tenth of a night's lines each night; 1.0 holds it about steady)."""
    if not 0 < restock <= 1:
        raise ValueError(f"restock is a share of the skus, above 0 and at most 1, not {restock}")
    if stock <= 0:
        raise ValueError(f"stock is a share of the demand, above 0, not {stock}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, not {shape!r}")
    rng = random.Random(seed + 1_000_003 * night)
    day = business_date(night)
    order_prefix = "ORD-" if night == 0 else f"ORD-N{night:03d}-"
    batch_prefix = "B-" if night == 0 else f"B-N{night:03d}-"
    skus = skus or sku_count(lines, shape)
    names = [f"SKU-{i:06d}" for i in range(skus)]
    cum_weights = (
        list(itertools.accumulate(1.0 / (k + 1) for k in range(skus))) if shape == "zipf" else None
    )
    (out / "orders").mkdir(parents=True, exist_ok=True)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    demand = [0] * skus
    ordered = [0] * skus  # lines per sku
    done = 0
    part = 0
    while done < lines:
        size = min(FILE_LINES, lines - done)
        picks = rng.choices(range(skus), cum_weights=cum_weights, k=size)
        qtys = [rng.randint(1, 10) for _ in range(size)]
        for sku, qty in zip(picks, qtys, strict=True):
            demand[sku] += qty
            ordered[sku] += 1
        frame = pl.DataFrame(
            {
                "orderid": [f"{order_prefix}{n:09d}" for n in range(done, done + size)],
                "sku": [names[s] for s in picks],
                "qty": qtys,
            }
        )
        part += 1
        frame.write_csv(out / "orders" / f"{day}-part-{part:03d}.csv")
        done += size

    references: list[str] = []
    batch_skus: list[str] = []
    quantities: list[int] = []
    etas: list[dt.date | None] = []
    share = restock if night > 0 else 1.0
    for index, name in enumerate(names):
        if share < 1 and rng.random() >= share:
            continue
        count = rng.randint(1, MAX_BATCHES[shape])
        stock_units = max(1, int(demand[index] * stock / share))
        cuts = sorted(rng.randint(0, stock_units) for _ in range(count - 1))
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, stock_units], strict=True)]
        days = sorted(rng.sample(range(1, 90), count))
        in_stock = rng.random() < 0.5
        for j in range(count):
            references.append(f"{batch_prefix}{index:06d}-{j}")
            batch_skus.append(name)
            quantities.append(shares[j])
            etas.append(None if in_stock and j == 0 else day + dt.timedelta(days[j]))
    pl.DataFrame(
        {"reference": references, "sku": batch_skus, "qty": quantities, "eta": etas},
        schema={"reference": pl.String, "sku": pl.String, "qty": pl.Int64, "eta": pl.Date},
    ).write_csv(out / "batches" / f"{day}-manifest.csv")
    return Generated(out, lines, skus, shape, max(ordered) / lines if lines else 0.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skus", type=int, help="default: one per 100 lines")
    parser.add_argument("--shape", choices=SHAPES, default="zipf")
    args = parser.parse_args(argv)
    made = generate(args.lines, args.out, args.seed, args.skus, args.shape)
    print(f"{made.lines:,} lines, {made.skus:,} skus, hottest sku {made.hot_share:.1%}")


if __name__ == "__main__":
    main()
