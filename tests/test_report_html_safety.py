"""The HTML report never carries script from a plugin: hostile SVG figures are sanitised by an
allowlist and the page forbids scripts and network fetches with a Content-Security-Policy."""

from html.parser import HTMLParser

import numpy as np
import pytest
import torch

import provscan
from provscan.architectures import small_cnn
from provscan.classifier_card import save_classifier
from provscan.detectors import Detector
from provscan.evidence import Claim, Evidence
from provscan.report import svg as svgplot
from provscan.report.sanitize import MAX_ELEMENTS, sanitize_svg

SVG = 'xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
HOSTILE = {
    "onload": f'<svg {SVG} onload="alert(1)"><rect width="5" height="5" onclick="alert(2)"/></svg>',
    "script": f'<svg {SVG}><script>alert(1)</script><SCRIPT>alert(2)</SCRIPT><text>ok</text></svg>',
    "js-href": f'<svg {SVG}><a href="javascript:alert(1)"><text>x</text></a>'
               f'<use xlink:href=" JaVa&#x09;script:alert(1)"/></svg>',
    "foreignObject": f'<svg {SVG}><foreignObject><body xmlns="http://www.w3.org/1999/xhtml">'
                     f'<iframe src="https://evil.example/"/></body></foreignObject></svg>',
    "external-use": f'<svg {SVG}><use href="https://evil.example/x.svg#a"/>'
                    f'<use xlink:href="file:///etc/passwd#a"/></svg>',
    "data-svg-image": f'<svg {SVG}><image href="data:image/svg+xml;base64,PHN2Zy8+"/></svg>',
    "css": f'<svg {SVG}><style>@import url(https://evil.example/a.css);</style>'
           f'<rect style="fill:url(https://evil.example/p)" fill="url(https://evil.example/q)"/>'
           f'<rect style="background:expression(alert(1))"/></svg>',
    "animate": f'<svg {SVG}><a><animate attributeName="href" to="javascript:alert(1)"/>'
               f'<set attributeName="onmouseover" to="alert(1)"/></a></svg>',
    "entities": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
                '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                f'<svg {SVG}><text>&b;</text></svg>',
    "external-entity": '<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                       f'<svg {SVG}><text>&x;</text></svg>',
    "not-svg-root": '<?xml version="1.0"?><html><script>alert(1)</script></html>',
    "breakout": f'<svg {SVG}><text>&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;</text>'
                f'<rect id="x&quot; onload=&quot;alert(1)"/></svg>',
}


class HostileDetector(Detector):
    id = "t.hostile-figures"
    applies_to = ("classifier",)

    def run(self, target, params, rng):
        claim = Claim("c", "H0", "exact binomial (greater)", 1.0, 0.5, 0.05, 10)
        return Evidence(self.id, "1", self.plugin, target.kind, [claim], primary="c",
                        figures={name: svg.encode() for name, svg in HOSTILE.items()})


class HostilePlugin:
    __test__ = False

    @provscan.hookimpl
    def register_detectors(self):
        return [HostileDetector]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    handle_startendtag = handle_starttag


def _assert_inert(page: str) -> None:
    doc = _Collect()
    doc.feed(page)
    names = {t for t, _ in doc.tags}
    assert not names & {"script", "foreignobject", "iframe", "object", "embed", "a", "animate",
                        "set", "body", "html"} - ({"html", "body"} if "<!DOCTYPE html>" in page else set())
    own_stylesheet = 1 if page.startswith("<!DOCTYPE html>") else 0
    assert sum(1 for t, _ in doc.tags if t == "style") == own_stylesheet
    for tag, attrs in doc.tags:
        for key, value in attrs:
            low = (value or "").lower().replace("\t", "").replace(" ", "")
            assert not key.startswith("on"), (tag, key, value)
            assert "javascript:" not in low and "evil.example" not in low and "file:" not in low
            if key in ("href", "xlink:href"):
                assert value.startswith("#") or value.startswith("data:image/png;base64,"), value
            if key == "src":
                assert value.startswith("data:image/png;base64,"), value
    assert "aaaaaaaaaa" not in page


def test_hostile_plugin_figures_never_reach_the_page(tmp_path, run_cli, register_plugin, monkeypatch):
    monkeypatch.chdir(tmp_path)
    register_plugin(HostilePlugin(), name="hostile")
    torch.manual_seed(0)
    save_classifier(small_cnn(), tmp_path / "model", "small-cnn", {}, 10, (1, 8, 8))
    res = run_cli("verify", tmp_path / "model", "-d", "t.hostile-figures", "--format", "html",
                  "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    page = (tmp_path / "o" / "report.html").read_text()
    assert ('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "img-src data:; style-src 'unsafe-inline'") in page
    _assert_inert(page)
    for name in HOSTILE:  # every figure is still listed (sanitised or replaced by a note)
        assert f"<figcaption>{name}</figcaption>" in page
    assert ">ok</text>" in page  # harmless content of a sanitised figure survives


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_sanitiser_output_is_inert_on_its_own(name):
    clean = sanitize_svg(HOSTILE[name].encode())
    if clean is not None:
        _assert_inert(clean)


def test_provscan_own_figures_survive_sanitising_unchanged_in_substance():
    imgs = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    for fig in (svgplot.bar_chart([1, 5, 2], highlight=[1], threshold=3, title="t <&>"),
                svgplot.image_grid(imgs, ["a", "b", "c"], cols=3, highlight=[0], title="grid")):
        clean = sanitize_svg(fig)
        src = fig.decode()
        assert clean is not None
        for tag in ("<rect", "<text", "<line", "<image", "<title"):
            assert clean.count(tag) == src.count(tag), tag
        assert clean.count("data:image/png;base64,") == src.count("data:image/png;base64,")
        assert clean.count("style=") == src.count("style=")


def test_budgets_refuse_huge_figures():
    many = b"<svg>" + b"<g></g>" * (MAX_ELEMENTS + 1) + b"</svg>"
    assert sanitize_svg(many) is None
    deep = b"<svg>" + b"<g>" * 100_000 + b"</g>" * 100_000 + b"</svg>"
    assert sanitize_svg(deep) is not None  # streamed, no recursion
