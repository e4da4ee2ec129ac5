"""The fleet summary: ``summary.jsonl`` (one line per finished target), ``summary.html`` (one
self-contained table with the verdict counts and links to each target's reports) and
``summary.sarif`` (one SARIF 2.1.0 log with one run per target). All three are rewritten
atomically, so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from provscan.fsutil import atomic_write_bytes, atomic_write_text

STATUSES = ("pass", "fail", "inconclusive", "error")
#: Worst first: the fleet's exit code is that of its worst target.
SEVERITY = ("fail", "error", "inconclusive", "pass")
EXIT_CODES = {"pass": 0, "fail": 1, "error": 2, "inconclusive": 3}


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for r in rows:
        out[r["status"]] += 1
    return out


def fleet_exit_code(rows: list[dict[str, Any]]) -> int:
    """Fail (1) beats error (2) beats inconclusive (3) beats pass (0); an empty fleet passes."""
    seen = {r["status"] for r in rows}
    for status in SEVERITY:
        if status in seen:
            return EXIT_CODES[status]
    return 0


def write_summary(out: Path, rows: list[dict[str, Any]], sarif_runs: list[dict[str, Any]],
                  total: int) -> None:
    atomic_write_text(out / "summary.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    atomic_write_text(out / "summary.html", render_html(rows, total))
    log = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
           "runs": sarif_runs}
    atomic_write_bytes(out / "summary.sarif", (json.dumps(log, indent=1, sort_keys=True) + "\n").encode())


_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;
vertical-align:top}th{background:#f4f4f4}.badge{display:inline-block;padding:2px 9px;border-radius:10px;
color:#fff;font-weight:bold}.pass{background:#2e7d32}.fail{background:#c62828}
.inconclusive{background:#ef8f00}.error{background:#6a1b9a}code{font-size:.85em}"""


def render_html(rows: list[dict[str, Any]], total: int) -> str:
    c = counts(rows)
    head = " ".join(f'<span class="badge {s}">{s} {c[s]}</span>' for s in STATUSES)
    body = []
    for r in rows:
        links = " ".join(f'<a href="{escape(p)}">{escape(Path(p).suffix.lstrip("."))}</a>'
                         for p in r.get("reports", []))
        cert = f'<a href="{escape(r["certificate"])}">certificate</a>' if r.get("certificate") else ""
        why = "; ".join(r.get("reasons") or ([r["error"]] if r.get("error") else []))
        body.append(
            f'<tr><td>{escape(r["name"])}</td><td><code>{escape(r["location"])}</code></td>'
            f'<td><span class="badge {escape(r["status"])}">{escape(r["status"])}</span></td>'
            f'<td><code>{escape((r.get("digest") or "")[:16])}</code></td>'
            f'<td>{"yes" if r.get("cached") else ""}</td><td>{cert} {links}</td>'
            f'<td>{escape(why[:500])}</td></tr>')
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>provscan fleet</title>"
            f"<style>{_CSS}</style></head><body><h1>provscan fleet</h1>"
            f"<p>{len(rows)} of {total} targets finished. {head}</p>"
            "<table><tr><th>target</th><th>location</th><th>verdict</th><th>sha256</th>"
            "<th>cached</th><th>outputs</th><th>reasons</th></tr>"
            + "\n".join(body) + "</table></body></html>\n")
