"""The scaling plot's SVG writer (benchmarks/svg.py): a well-formed picture of what was given."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from benchmarks.report import label
from benchmarks.svg import Panel, Series, figure, nice_ceiling

NS = {"svg": "http://www.w3.org/2000/svg"}
REPO = Path(__file__).resolve().parents[2]


def two_panels(peak: float = 0.76) -> str:
    return figure(
        [
            Panel(
                "Wall time",
                "seconds",
                [
                    Series("floor (zipf)", [(1e6, 1.5), (1e7, 9.6), (3e7, 30.0)], dashed=True),
                    Series("pipeline <local> & co", [(1e6, 12.6), (1e7, 76.7), (3e7, 240.0)]),
                ],
            ),
            Panel(
                "Peak RSS",
                "GB",
                [Series("pipeline", [(1e6, peak), (1e7, 2.5)])],
                reference=(1.5, "target 1.5 GB"),
            ),
        ],
        label,
        caption="make bench",
    )


def test_the_plot_is_well_formed_svg_with_one_polyline_per_series() -> None:
    root = ET.fromstring(two_panels())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    polylines = root.findall("svg:polyline", NS)
    assert [len(p.attrib["points"].split()) for p in polylines] == [3, 3, 2]
    assert polylines[0].attrib["stroke-dasharray"]  # the floor is dashed
    assert "stroke-dasharray" not in polylines[1].attrib


def test_names_and_ticks_are_written_as_text_escaped() -> None:
    text = two_panels()
    words = [t.text for t in ET.fromstring(text).iter("{http://www.w3.org/2000/svg}text")]
    assert "pipeline <local> & co" in words  # escaped in the file, intact once parsed
    assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    assert {"1M", "10M", "30M"} <= set(words)  # the x axis is ticked at the measured sizes
    assert "target 1.5 GB" in words and "make bench" in words


def test_larger_values_are_drawn_higher_and_further_right() -> None:
    root = ET.fromstring(two_panels())
    points = root.findall("svg:polyline", NS)[1].attrib["points"].split()
    xy = [tuple(float(v) for v in p.split(",")) for p in points]
    assert xy[0][0] < xy[1][0] < xy[2][0]
    assert xy[0][1] > xy[1][1] > xy[2][1]  # SVG's y grows downwards


def test_the_y_axis_ends_at_a_round_number_above_the_largest_value() -> None:
    assert nice_ceiling(240.0) == 250.0
    assert nice_ceiling(2.5) == 2.5
    assert nice_ceiling(0.76) == 1.0
    assert nice_ceiling(76.7) == 100.0
    assert nice_ceiling(0.0) == 1.0


def test_the_file_depends_on_its_input_only() -> None:
    """No clock, counter or hash order in the picture: built in two fresh interpreters with
    different hash seeds it is the same, byte for byte, and a changed value changes it."""
    script = "from benchmarks.tests.test_svg import two_panels; print(two_panels(), end='')"
    built = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert built == {two_panels()}
    assert two_panels(peak=0.8) != two_panels()
