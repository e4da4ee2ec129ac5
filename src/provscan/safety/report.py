"""Safety verdicts per file and for a whole checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class SafetyVerdict(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    INCONCLUSIVE = "inconclusive"


@dataclass
class FileSafety:
    path: str
    format: str
    verdict: SafetyVerdict
    findings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class SafetyReport:
    files: list[FileSafety]

    @property
    def verdict(self) -> SafetyVerdict:
        verdicts = {f.verdict for f in self.files}
        if SafetyVerdict.UNSAFE in verdicts:
            return SafetyVerdict.UNSAFE
        if SafetyVerdict.INCONCLUSIVE in verdicts or not self.files:
            return SafetyVerdict.INCONCLUSIVE
        return SafetyVerdict.SAFE

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value,
                "files": [{**asdict(f), "verdict": f.verdict.value} for f in self.files]}
