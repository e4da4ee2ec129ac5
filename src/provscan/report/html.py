"""Single-file HTML report: no external assets, plots as inline SVG.

The page carries a Content-Security-Policy that forbids scripts and every network fetch, and
plugin figures are inlined only after the allowlist sanitiser (:mod:`provscan.report.sanitize`).

For each detector: its claims (null hypothesis, test, statistic, p-value, alpha, n, decision),
a -log10(p) bar chart against -log10(alpha), the detector's own ``figures`` (SVG inlined, PNG as a
data URI) and its ``details`` (tables for flat mappings, JSON otherwise).
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from typing import Any

from provscan.report import Reporter, result_dict
from provscan.report.sanitize import MAX_FIGURE_BYTES, sanitize_svg

# No scripts, no network, no plugins, no forms: the page may only use its own inline style and
# inline (data:) images. Plugin SVG is sanitised as well (provscan.report.sanitize).
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
       "form-action 'none'")

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f4f4f4}code,pre{font-size:.85em}
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;color:white;font-weight:bold}
.pass,.no-evidence{background:#2e7d32}.fail,.finding{background:#c62828}
.inconclusive{background:#ef8f00}.error{background:#6a1b9a}
figure{display:inline-block;margin:.5em 1em .5em 0}figcaption{font-size:.85em;color:#555}
"""


def _badge(word: str) -> str:
    return f'<span class="badge {escape(word)}">{escape(word)}</span>'


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return escape(str(v)) if v is not None else "&mdash;"


def _figure(caption: str, data: bytes) -> str:
    """A plugin's figure: SVG through the allowlist sanitiser, PNG as a data URI, else a note."""
    head = data.lstrip()[:200]
    if head.startswith(b"<svg") or head.startswith(b"<?xml") or head.startswith(b"<!--"):
        clean = sanitize_svg(data)
        body = clean if clean is not None else "<p>(figure omitted: not a well-formed, safe SVG)</p>"
    elif head.startswith(b"\x89PNG") and len(data) <= MAX_FIGURE_BYTES:
        body = f'<img alt="{escape(caption)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
    else:
        body = "<p>(figure in an unknown format)</p>"
    return f"<figure>{body}<figcaption>{escape(caption)}</figcaption></figure>"


def _details(details: dict[str, Any]) -> str:
    parts = []
    for key, value in details.items():
        if key == "traceback":
            parts.append(f"<details><summary>traceback</summary><pre>{escape(str(value))}</pre></details>")
        elif isinstance(value, dict) and value and all(not isinstance(v, dict | list) for v in value.values()):
            rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_fmt(v)}</td></tr>" for k, v in value.items())
            parts.append(f"<details open><summary>{escape(key)}</summary><table>{rows}</table></details>")
        else:
            text = json.dumps(value, indent=2, default=str)
            parts.append(f"<details><summary>{escape(key)}</summary><pre>{escape(text)}</pre></details>")
    return "".join(parts)


def _pvalue_chart(ev: Any) -> str:
    from provscan.report import svg as svgplot

    claims = [c for c in ev.claims if c.p_value is not None]
    if not claims:
        return ""
    values = [min(-math.log10(max(c.p_value, 1e-300)), 300.0) for c in claims]
    alphas = {c.alpha for c in claims if c.alpha > 0}
    threshold = -math.log10(min(alphas)) if alphas else None
    chart = svgplot.bar_chart(values, [c.name for c in claims],
                              highlight=[i for i, c in enumerate(claims) if c.p_value <= c.alpha],
                              threshold=threshold, threshold_label="-log10 alpha" if threshold else "",
                              ylabel="-log10 p", title=f"{ev.detector}: evidence per claim",
                              width=min(720, 160 + 60 * len(claims)))
    return _figure("-log10(p) per claim; red bars reject their null at their alpha", chart)


def render_html(result: Any) -> str:
    data = result_dict(result)
    scan = result.scan
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="referrer" content="no-referrer">',
           f"<title>provscan report: {escape(data['target']['location'])}</title><style>{CSS}</style></head><body>",
           f"<h1>provscan report {_badge(result.verdict.status)}</h1>",
           "<table>",
           f"<tr><th>target</th><td><code>{escape(data['target']['location'])}</code></td></tr>",
           f"<tr><th>kind / format</th><td>{_fmt(data['target']['kind'])} / {_fmt(data['target']['format'])}</td></tr>"]
    if scan.manifest is not None:
        out.append(f"<tr><th>root digest</th><td><code>sha256:{scan.manifest.root_sha256}</code></td></tr>")
    out += [f"<tr><th>policy</th><td>{escape(scan.policy.name)} "
            f"(<code>{escape(data['policy']['origin'])}</code>)</td></tr>",
            f"<tr><th>exit code</th><td>{result.exit_code}</td></tr>",
            f"<tr><th>seed</th><td>{scan.seed}</td></tr>",
            f"<tr><th>time</th><td>{escape(scan.started_at)} &rarr; {escape(result.finished_at)}</td></tr>",
            f"<tr><th>environment</th><td>{escape(json.dumps(result.environment, default=str))}</td></tr>",
            "</table>"]
    if result.verdict.reasons or getattr(result.verdict, "warnings", []):
        out.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in result.verdict.reasons)
                   + "".join(f"<li>warning: {escape(w)}</li>" for w in getattr(result.verdict, "warnings", []))
                   + "</ul>")
    out.append("<p>Claims are scoped: <em>no evidence</em> means the test did not reject its null "
               "hypothesis at its level under these parameters, not that the model is clean.</p>")
    for ev in result.evidence:
        out.append(f"<h2 id='{escape(ev.detector)}'>{escape(ev.detector)} {_badge(ev.decision.value)}</h2>")
        out.append(f"<p>plugin {escape(ev.plugin)}, detector version {escape(ev.detector_version)}, "
                   f"{ev.duration_s:.2f} s; parameters <code>{escape(json.dumps(ev.params, default=str))}</code>; "
                   f"seeds <code>{escape(json.dumps(ev.seeds, default=str))}</code></p>")
        if ev.error:
            out.append(f"<p><strong>error:</strong> {escape(ev.error)}</p>")
        if ev.claims:
            out.append("<table><tr><th>claim</th><th>null hypothesis</th><th>test</th><th>statistic</th>"
                       "<th>p-value</th><th>bound</th><th>alpha</th><th>n</th><th>decision</th><th>summary</th></tr>")
            for c in ev.claims:
                bound = "" if c.bound is None else (
                    f"{escape(c.bound.method)} {c.bound.level:g}: [{_fmt(c.bound.lower)}, {_fmt(c.bound.upper)}]")
                exact = "" if c.exact else " (approx.)"
                out.append(f"<tr><td>{escape(c.name)}</td><td>{escape(c.null_hypothesis)}</td>"
                           f"<td>{escape(c.test)}{exact}</td><td>{_fmt(c.statistic)}</td><td>{_fmt(c.p_value)}</td>"
                           f"<td>{bound}</td><td>{_fmt(c.alpha)}</td><td>{c.n}</td>"
                           f"<td>{_badge(c.decision.value if c.decision else 'inconclusive')}</td>"
                           f"<td>{escape(c.summary)}</td></tr>")
            out.append("</table>")
        out.append(_pvalue_chart(ev))
        for caption, fig in ev.figures.items():
            out.append(_figure(caption, fig))
        details = dict(ev.details)
        if any(c.counts for c in ev.claims):
            details = {**{f"counts: {c.name}": c.counts for c in ev.claims if c.counts}, **details}
        out.append(_details(details))
    out.append("<h2>raw JSON</h2><details><summary>report.json</summary><pre>"
               + escape(json.dumps(data, indent=2, sort_keys=True, default=str)) + "</pre></details>")
    out.append("</body></html>\n")
    return "".join(out)


class HtmlReporter(Reporter):
    name = "html"
    suffix = ".html"

    def render(self, result: Any) -> bytes:
        return render_html(result).encode("utf-8")
