"""Report writers. Each has ``name``, ``suffix`` and ``render(result) -> bytes``.

- ``text``: one line per detector and claim, the verdict; ANSI colour when ``color=True``.
- ``json``: :func:`result_dict`, validated by ``provscan/schemas/report.v1.json``.
- ``sarif``: SARIF 2.1.0 (:mod:`provscan.report.sarif`).
- ``html``: one self-contained file with inline SVG plots (:mod:`provscan.report.html`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, ClassVar

REPORT_SCHEMA = "https://provscan.dev/schemas/report.v1.json"


class Reporter:
    name: ClassVar[str]
    suffix: ClassVar[str]

    def render(self, result: Any) -> bytes:
        raise NotImplementedError


def result_dict(result: Any) -> dict[str, Any]:
    """The whole scan as plain JSON values (the ``json`` report)."""
    from provscan.digest import logical_location
    from provscan.evidence import _jsonable

    scan = result.scan
    verdict = result.verdict
    policy = scan.policy
    return _jsonable({
        "schema": REPORT_SCHEMA,
        "target": {"location": logical_location(scan.location),
                   "kind": scan.target.kind if scan.target else None,
                   "format": scan.target.format if scan.target else None,
                   "manifest": scan.manifest.to_dict() if scan.manifest else None,
                   "safety": scan.safety.to_dict() if scan.safety else None,
                   "ignore": list(getattr(scan.options, "ignore", ()))},
        "seed": scan.seed,
        "started_at": scan.started_at,
        "finished_at": result.finished_at,
        "environment": result.environment,
        "plugins": dict(getattr(result, "plugins", {}) or {}),
        "policy": {"name": policy.name, "origin": policy.public_origin,
                   "sha256": policy.sha256, "source_sha256": policy.source_sha256},
        "verdict": {"status": verdict.status, "exit_code": result.exit_code,
                    "reasons": verdict.reasons, "warnings": list(getattr(verdict, "warnings", [])),
                    "judged": list(getattr(verdict, "judged", []))},
        "evidence": [e.to_dict() for e in result.evidence],
    })


class JsonReporter(Reporter):
    name = "json"
    suffix = ".json"

    def render(self, result: Any) -> bytes:
        return (json.dumps(result_dict(result), indent=2, sort_keys=True, default=str) + "\n").encode()


def stream_supports_color(stream: Any = None) -> bool:
    """True on a terminal unless ``NO_COLOR`` is set."""
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


_COLORS = {"finding": "31", "fail": "31", "no-evidence": "32", "pass": "32",
           "inconclusive": "33", "error": "35"}


class TextReporter(Reporter):
    name = "text"
    suffix = ".txt"

    def __init__(self, color: bool = False) -> None:
        self.color = color

    def _c(self, word: str, width: int = 0) -> str:
        padded = f"{word:<{width}}"
        code = _COLORS.get(word)
        return f"\x1b[{code}m{padded}\x1b[0m" if self.color and code else padded

    def render(self, result: Any) -> bytes:
        scan = result.scan
        from provscan.digest import logical_location

        lines = [f"target: {logical_location(scan.location)}"]
        if scan.manifest is not None:
            lines.append(f"digest: sha256:{scan.manifest.root_sha256} ({len(scan.manifest.files)} files)")
        if getattr(scan.options, "ignore", ()):
            lines.append(f"ignored (not digested, not scanned): {', '.join(scan.options.ignore)}")
        lines.append(f"policy: {scan.policy.name}")
        for ev in result.evidence:
            c = ev.claim()
            p = "" if c is None or c.p_value is None else f" p={c.p_value:.3g}"
            lines.append(f"  {ev.detector:<28} {self._c(ev.decision.value, 13)}{p}  "
                         f"{ev.error or (c.summary if c else '')}")
            for other in ev.claims:
                if other is c:
                    continue
                op = "" if other.p_value is None else f" p={other.p_value:.3g}"
                lines.append(f"    - {other.name:<24} {other.decision.value if other.decision else '?'}{op}")
        for r in result.verdict.reasons:
            lines.append(f"  reason: {r}")
        for w in getattr(result.verdict, "warnings", []):
            lines.append(f"  warning: {w}")
        lines.append(f"verdict: {self._c(result.verdict.status)} (exit {result.exit_code})")
        return ("\n".join(lines) + "\n").encode()


def __getattr__(name: str) -> Any:  # lazy: SarifReporter and HtmlReporter
    if name == "SarifReporter":
        from provscan.report.sarif import SarifReporter

        return SarifReporter
    if name == "HtmlReporter":
        from provscan.report.html import HtmlReporter

        return HtmlReporter
    raise AttributeError(name)
