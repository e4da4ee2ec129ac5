"""What a detector returns: claims with their statistics, bound to parameters and seeds."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Decision(str, Enum):
    """The outcome of one claim.

    ``finding``: the null hypothesis was rejected at the claim's alpha (evidence of the attack,
    or of training on the protected data). ``no-evidence``: not rejected; this is *not* a proof
    of absence. ``inconclusive``: the check could not be carried out. ``error``: the plugin failed.
    """

    FINDING = "finding"
    NO_EVIDENCE = "no-evidence"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass
class Bound:
    """A confidence bound, e.g. a Clopper-Pearson upper bound on a rate."""

    method: str
    level: float
    lower: float | None = None
    upper: float | None = None


@dataclass
class Claim:
    """One statistical test of one null hypothesis.

    ``p_value`` is exact when ``exact`` is true; approximate p-values must say so here and in
    ``test``. ``decision`` defaults to comparing ``p_value`` with ``alpha``.
    """

    name: str
    null_hypothesis: str
    test: str
    statistic: float | None
    p_value: float | None
    alpha: float
    n: int
    exact: bool = True
    bound: Bound | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    decision: Decision | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        if self.decision is None:
            if self.p_value is None or (isinstance(self.p_value, float) and math.isnan(self.p_value)):
                self.decision = Decision.INCONCLUSIVE
            else:
                self.decision = Decision.FINDING if self.p_value <= self.alpha else Decision.NO_EVIDENCE
        else:
            self.decision = Decision(self.decision)

    @property
    def neg_log10_p(self) -> float | None:
        if self.p_value is None:
            return None
        return float("inf") if self.p_value <= 0 else -math.log10(self.p_value)


@dataclass
class Evidence:
    """Everything one detector run produced for one target.

    ``claims`` lists every test the detector ran; ``primary`` names the claim a policy judges by
    default. ``details`` holds JSON-serialisable extras for reports (per-class statistics, example
    outputs); ``figures`` maps a caption to an image (SVG from :mod:`provscan.report.svg`, or PNG bytes) for
    the HTML report.
    """

    detector: str
    detector_version: str
    plugin: str
    target_kind: str
    claims: list[Claim]
    primary: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    error: str | None = None
    duration_s: float = 0.0

    def claim(self, name: str | None = None) -> Claim | None:
        """The named claim, or the primary one, or the first."""
        wanted = name or self.primary
        for c in self.claims:
            if wanted is None or c.name == wanted:
                return c
        return None

    @property
    def decision(self) -> Decision:
        if self.error is not None:
            return Decision.ERROR
        c = self.claim()
        return c.decision if c is not None and c.decision is not None else Decision.INCONCLUSIVE

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("figures")
        d["decision"] = self.decision.value
        for c in d["claims"]:
            c["decision"] = Decision(c["decision"]).value
        return _jsonable(d)


def _jsonable(obj: Any) -> Any:
    """Convert numpy scalars, enums, tuples and non-finite floats into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Enum):
        return obj.value
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj
