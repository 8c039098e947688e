"""A deterministic inbox of any size for the benchmarks.

    python -m benchmarks.generate --lines 1000000 --out /tmp/inbox [--seed 42]

The same seed and size always give the same files (Python's ``random.Random``, no hashing that
could change between library versions). The shape follows issue 6:

* skus: one per 100 lines, at least 100 and at most 100,000; popularity is skewed (Zipf, s=1:
  the k-th sku is ordered about 1/k as often as the first);
* orders: one line per (orderid, sku), 1-10 units, in files of at most 1,000,000 lines
  (``orders/<date>-part-NNN.csv``);
* batches: 1-4 per sku, the first in stock for about half of the skus, the others with distinct
  ETAs; the stock of a sku is a bit short of its demand (90 %) so some lines go out of stock.

Plain CSV without quote characters, as most exports are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import random
from pathlib import Path

import polars as pl

BUSINESS_DATE = dt.date(2026, 11, 26)
FILE_LINES = 1_000_000
STOCK_SHARE = 0.9


def sku_count(lines: int) -> int:
    return max(100, min(100_000, lines // 100))


def generate(lines: int, out: Path, seed: int = 42, skus: int | None = None) -> Path:
    """Writes ``out/batches/`` and ``out/orders/``; returns ``out``. ``skus`` overrides the
    default of one sku per 100 lines."""
    rng = random.Random(seed)
    skus = skus or sku_count(lines)
    names = [f"SKU-{i:06d}" for i in range(skus)]
    cum_weights = list(itertools.accumulate(1.0 / (k + 1) for k in range(skus)))
    (out / "orders").mkdir(parents=True, exist_ok=True)
    (out / "batches").mkdir(parents=True, exist_ok=True)
    demand = [0] * skus
    done = 0
    part = 0
    while done < lines:
        size = min(FILE_LINES, lines - done)
        picks = rng.choices(range(skus), cum_weights=cum_weights, k=size)
        qtys = [rng.randint(1, 10) for _ in range(size)]
        for sku, qty in zip(picks, qtys, strict=True):
            demand[sku] += qty
        frame = pl.DataFrame(
            {
                "orderid": [f"ORD-{n:09d}" for n in range(done, done + size)],
                "sku": [names[s] for s in picks],
                "qty": qtys,
            }
        )
        part += 1
        frame.write_csv(out / "orders" / f"{BUSINESS_DATE}-part-{part:03d}.csv")
        done += size

    references: list[str] = []
    batch_skus: list[str] = []
    quantities: list[int] = []
    etas: list[dt.date | None] = []
    for index, name in enumerate(names):
        count = rng.randint(1, 4)
        stock = max(1, int(demand[index] * STOCK_SHARE))
        cuts = sorted(rng.randint(0, stock) for _ in range(count - 1))
        shares = [b - a for a, b in zip([0, *cuts], [*cuts, stock], strict=True)]
        days = sorted(rng.sample(range(1, 90), count))
        in_stock = rng.random() < 0.5
        for j in range(count):
            references.append(f"B-{index:06d}-{j}")
            batch_skus.append(name)
            quantities.append(shares[j])
            etas.append(None if in_stock and j == 0 else BUSINESS_DATE + dt.timedelta(days[j]))
    pl.DataFrame(
        {"reference": references, "sku": batch_skus, "qty": quantities, "eta": etas},
        schema={"reference": pl.String, "sku": pl.String, "qty": pl.Int64, "eta": pl.Date},
    ).write_csv(out / "batches" / f"{BUSINESS_DATE}-manifest.csv")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skus", type=int, help="default: one per 100 lines (100 to 100,000)")
    args = parser.parse_args(argv)
    generate(args.lines, args.out, args.seed, args.skus)


if __name__ == "__main__":
    main()
