"""Report writers. Each has ``name``, ``suffix`` and ``render(result) -> bytes``.

(Interim: text and JSON; SARIF and HTML land with the certificate work.)
"""

from __future__ import annotations

import json
from typing import Any, ClassVar


class Reporter:
    name: ClassVar[str]
    suffix: ClassVar[str]

    def render(self, result: Any) -> bytes:
        raise NotImplementedError


def result_dict(result: Any) -> dict[str, Any]:
    scan = result.scan
    return {
        "schema": "https://provscan.dev/report/v1",
        "target": {"location": scan.location,
                   "kind": scan.target.kind if scan.target else None,
                   "manifest": scan.manifest.to_dict() if scan.manifest else None,
                   "safety": scan.safety.to_dict() if scan.safety else None},
        "seed": scan.seed,
        "started_at": scan.started_at,
        "finished_at": result.finished_at,
        "environment": result.environment,
        "verdict": {"status": result.verdict.status, "exit_code": result.exit_code,
                    "reasons": result.verdict.reasons},
        "evidence": [e.to_dict() for e in result.evidence],
    }


class JsonReporter(Reporter):
    name = "json"
    suffix = ".json"

    def render(self, result: Any) -> bytes:
        return (json.dumps(result_dict(result), indent=2, sort_keys=True) + "\n").encode()


class TextReporter(Reporter):
    name = "text"
    suffix = ".txt"

    def render(self, result: Any) -> bytes:
        lines = [f"target: {result.scan.location}"]
        for ev in result.evidence:
            c = ev.claim()
            p = "" if c is None or c.p_value is None else f" p={c.p_value:.3g}"
            lines.append(f"  {ev.detector:<28} {ev.decision.value:<13}{p}  {ev.error or (c.summary if c else '')}")
        lines.append(f"verdict: {result.verdict.status} (exit {result.exit_code})")
        return ("\n".join(lines) + "\n").encode()
