"""The markdown block and plot `make bench` writes from results (benchmarks/report.py)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from benchmarks.process import Timed
from benchmarks.report import END, START, Fixed, Result, block, plot, replace_block, share
from benchmarks.steps import Steps

NOW = dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.UTC)


def process(wall: float, rss: float) -> Timed:
    return Timed(wall, wall * 1.2, rss * 0.9, rss, 2, "", NOW, NOW, 0)


def result(lines: int, shape: str, floor: float, pipeline: float, rss: float) -> Result:
    steps = Steps(startup=1.4, seconds={"load": 4.3, "allocate": 20.8}, between=0.3, wrap_up=1.5)
    return Result(
        lines,
        shape,
        lines // 100,
        0.083,
        "local",
        process(floor, 300),
        process(pipeline, rss),
        steps,
    )


RESULTS = [
    result(1_000_000, "zipf", 1.0, 8.0, 760),
    result(10_000_000, "zipf", 5.0, 40.0, 2500),
    result(1_000_000, "uniform", 1.0, 7.0, 700),
]
FIXED = Fixed(process(2.0, 120), Steps(startup=0.9, flow=0.8, wrap_up=0.3), 5)


def test_the_table_states_ratios_shapes_and_prefects_fixed_cost() -> None:
    text = block(RESULTS, FIXED, "Measured now.", ["- a machine"], 2, [])
    assert text.startswith(START) and text.endswith(END)
    assert "| 10M | zipf (100,000; 8.3%) | local |" in text
    assert "**8.0×**" in text  # 40 s against 5 s
    assert "| 7.6× |" in text  # (40 - 2) / 5: without the trivial flow's 2 s
    assert "| 2.00 s (2.40 s) | 0.90 s | 0.80 s | 0.30 s | 120 MiB |" in text
    assert "| load | allocate | between steps | wrap-up + exit |" in text


def test_the_block_is_replaced_and_the_prose_around_it_kept() -> None:
    doc = f"# Benchmarks\n\nprose before\n\n{START}\nold table\n{END}\n\nprose after\n"
    new = replace_block(doc, f"{START}\nnew table\n{END}")
    assert new == f"# Benchmarks\n\nprose before\n\n{START}\nnew table\n{END}\n\nprose after\n"
    assert replace_block("# Benchmarks\n", f"{START}\nt\n{END}").endswith(
        f"\n\n{START}\nt\n{END}\n"
    )


def test_the_plot_has_pipeline_and_floor_for_each_shape() -> None:
    root = ET.fromstring(plot(RESULTS, 2, NOW))
    names = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert names.count("floor (zipf)") == 2  # wall time and memory panels
    assert names.count("pipeline, local (uniform)") == 2


def test_a_small_hot_share_keeps_its_digits() -> None:
    assert share(0.083) == "8.3%"
    assert share(0.0002) == "0.02%"  # a uniform night's hottest sku, not "0.0%"
    assert share(0.0000141) == "0.0014%"
