"""Safety verdicts per file and for a whole checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Verdict(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    INCONCLUSIVE = "inconclusive"


@dataclass
class FileSafety:
    path: str
    format: str
    verdict: Verdict
    findings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SafetyReport:
    files: list[FileSafety]

    @property
    def verdict(self) -> Verdict:
        verdicts = {f.verdict for f in self.files}
        if Verdict.UNSAFE in verdicts:
            return Verdict.UNSAFE
        if Verdict.INCONCLUSIVE in verdicts or not self.files:
            return Verdict.INCONCLUSIVE
        return Verdict.SAFE

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value,
                "files": [{**asdict(f), "verdict": f.verdict.value} for f in self.files]}
