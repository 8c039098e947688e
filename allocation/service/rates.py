"""How the log words a step's throughput: the same phrase for the load, the decision and the
Dask shards, so their lines read alike and `benchmarks/` can parse them."""

from __future__ import annotations


def rate(rows: int, seconds: float) -> str:
    """`1,000 rows in 0.50s (2,000 rows/s)`."""
    return f"{rows:,} rows in {seconds:.2f}s ({rows / seconds if seconds > 0 else 0:,.0f} rows/s)"
