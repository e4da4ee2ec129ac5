"""Policy: turn evidence into a verdict and an exit code.

(Interim: the default policy — any finding fails, anything inconclusive or erroring is
inconclusive. TOML policies land with the certificate work.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provscan.errors import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_POLICY_FAILED
from provscan.evidence import Decision, Evidence


@dataclass
class Policy:
    name: str = "default"
    rules: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the policy file's text, for its digest


@dataclass
class Verdict:
    status: str  # pass | fail | inconclusive
    reasons: list[str]

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_POLICY_FAILED, "inconclusive": EXIT_INCONCLUSIVE}[self.status]


def evaluate(policy: Policy, evidence: list[Evidence]) -> Verdict:
    fails, unclear = [], []
    for ev in evidence:
        d = ev.decision
        if d == Decision.FINDING:
            fails.append(f"{ev.detector}: finding")
        elif d in (Decision.INCONCLUSIVE, Decision.ERROR):
            unclear.append(f"{ev.detector}: {d.value}")
    if fails:
        return Verdict("fail", fails + unclear)
    if unclear:
        return Verdict("inconclusive", unclear)
    return Verdict("pass", [])
