"""The built-in ``file-safety`` detector: turns the pre-load safety scan into a claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import provscan
from provscan.detectors import TARGET_KINDS, Detector
from provscan.evidence import Claim, Decision, Evidence
from provscan.safety import SafetyVerdict

if TYPE_CHECKING:
    import numpy as np


class FileSafetyDetector(Detector):
    id = "file-safety"
    version = "0.1.0"
    description = "Static scan of every checkpoint file before loading (pickle globals, archive and safetensors structure)."
    applies_to = TARGET_KINDS

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        report = target.safety
        if report is None:
            decision, summary = Decision.INCONCLUSIVE, "no safety scan was run"
            files: list[Any] = []
        else:
            files = report.to_dict()["files"]
            decision = {SafetyVerdict.SAFE: Decision.NO_EVIDENCE, SafetyVerdict.UNSAFE: Decision.FINDING,
                        SafetyVerdict.INCONCLUSIVE: Decision.INCONCLUSIVE}[report.verdict]
            bad = [f for f in report.files if f.verdict != SafetyVerdict.SAFE]
            summary = "; ".join(f"{f.path}: {f.verdict.value} ({', '.join(f.findings) or 'n/a'})"
                                for f in bad[:5]) or f"{len(files)} file(s) understood, nothing outside the allowlists"
        claim = Claim(
            name="static-scan",
            null_hypothesis="the checkpoint files contain no construct that executes code when loaded",
            test="deterministic static analysis (default-deny allowlists)",
            statistic=None, p_value=None, alpha=0.0, n=len(files), exact=True,
            counts={v.value: sum(1 for f in files if f["verdict"] == v.value) for v in SafetyVerdict},
            decision=decision, summary=summary,
        )
        return Evidence(self.id, self.version, self.plugin or "provscan", target.kind, [claim],
                        primary="static-scan", details={"files": files})


@provscan.hookimpl
def register_detectors() -> list[type[Detector]]:
    return [FileSafetyDetector]
