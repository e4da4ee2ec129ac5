"""The SVG plot helpers produce well-formed, self-contained SVG."""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from provscan.report import svg

NS = "{http://www.w3.org/2000/svg}"


def parse(data: bytes) -> ET.Element:
    assert isinstance(data, bytes)
    root = ET.fromstring(data)
    assert root.tag == f"{NS}svg"
    text = data.decode()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    return root


def test_bar_chart_highlights_and_threshold():
    root = parse(svg.bar_chart([1.0, 5.0, 2.0, float("nan")], labels=list("abcd"), highlight=[1],
                               threshold=3.0, threshold_label="MAD 2", title="a <b> & c"))
    rects = [r for r in root.iter(f"{NS}rect") if r.find(f"{NS}title") is not None]
    assert len(rects) == 3  # the NaN bar is an empty slot
    colours = [r.get("fill") for r in rects]
    assert colours.count(svg.HIGHLIGHT) == 1 and colours[1] == svg.HIGHLIGHT
    assert any(line.get("stroke-dasharray") for line in root.iter(f"{NS}line"))
    heights = [float(r.get("height")) for r in rects]
    assert heights[1] > heights[2] > heights[0] > 0


def test_bar_chart_negative_values_and_length_check():
    parse(svg.bar_chart([-2.0, 3.0]))
    with pytest.raises(ValueError):
        svg.bar_chart([1.0], labels=["a", "b"])


def test_line_and_scatter_plots():
    x = np.arange(10)
    root = parse(svg.line_plot({"clean": (x, x**2), "poisoned": (x, 2 * x)}, hline=0.05, log_y=True,
                               xlabel="step", ylabel="p"))
    assert len(list(root.iter(f"{NS}polyline"))) == 2
    root = parse(svg.scatter_plot({"s": (x, np.sin(x))}))
    assert len(list(root.iter(f"{NS}circle"))) == 10
    with pytest.raises(ValueError):
        svg.line_plot({"bad": ([1, 2], [1])})


def test_histogram_counts_every_value():
    vals = np.random.default_rng(0).normal(size=500)
    root = parse(svg.histogram(vals, bins=10, markers={"observed": 2.5}))
    counts = [int(r.find(f"{NS}title").text.rsplit(":", 1)[1]) for r in root.iter(f"{NS}rect")
              if r.find(f"{NS}title") is not None]
    assert sum(counts) == 500
    parse(svg.histogram([]))


@pytest.mark.parametrize("shape", [(4, 8, 8), (4, 1, 8, 8), (4, 3, 6, 6), (4, 6, 6, 3)])
def test_image_grid_embeds_png(shape):
    imgs = np.random.default_rng(1).random(shape)
    root = parse(svg.image_grid(imgs, labels=["0", "1", "2", "3"], cols=2, highlight=[3], title="t"))
    hrefs = [i.get("href") for i in root.iter(f"{NS}image")]
    assert len(hrefs) == 4 and all(h.startswith("data:image/png;base64,") for h in hrefs)


def test_image_grid_rejects_bad_shape():
    with pytest.raises(ValueError):
        svg.image_grid(np.zeros((2, 2, 2, 2, 2)))
