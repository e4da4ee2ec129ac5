"""The detector and injector contracts that plugins implement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from provscan.evidence import Evidence
from provscan.params import Param

if TYPE_CHECKING:
    import numpy as np

TARGET_KINDS = ("files", "classifier", "causal-lm", "seq2seq", "encoder")


class Detector:
    """A check run against one target.

    Subclasses set the class attributes and implement :meth:`run`. ``id`` is stable and
    namespaced where it could clash (``taggants``, ``backdoor.trigger-inversion``). ``run`` gets the
    resolved parameters (defaults applied, types checked) and a seeded generator; it returns
    :class:`~provscan.evidence.Evidence` whose claims say the null hypothesis in words. A detector
    that cannot decide returns an inconclusive claim, never a clean one.

    ``resources`` says what one run needs, for fleet scans (``provscan verify-many --engine ray``
    requests it for the target's task, taking the largest value of each key over the target's
    detectors): ``CPU`` (cores, default 1), ``GPU`` (devices, default 0), ``memory`` (bytes of RAM
    to reserve, default 0: none reserved), and any other key is a custom Ray resource (e.g.
    ``{"CPU": 1, "GPU": 1}`` for a detector that wants a GPU). Keys left out take those defaults.
    """

    id: ClassVar[str]
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    applies_to: ClassVar[tuple[str, ...]] = ()
    params: ClassVar[tuple[Param, ...]] = ()
    plugin: ClassVar[str] = ""  # filled in by the plugin manager with the distribution name
    resources: ClassVar[dict[str, float]] = {"CPU": 1, "GPU": 0, "memory": 0}

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        raise NotImplementedError

    @classmethod
    def input_hints(cls, params: dict[str, Any]) -> dict[str, Any]:
        """What this detector's data says about the model's inputs, for opening a plain state
        dict without ``--input-shape`` / ``--num-classes``: ``{"input_shape": (C, H, W),
        "num_classes": N}`` (either key may be missing). Called with the resolved parameters
        before the target is opened; the default knows nothing. Keep it cheap."""
        return {}


class Injector:
    """Writes a modified copy of a dataset plus a secret describing what was done.

    ``apply`` must never modify ``data``; it writes ``out`` atomically (see
    :func:`provscan.fsutil.atomic_dir`) and the secret to ``secret`` (never inside ``out``).
    It returns a JSON-serialisable summary (counts, stealth figures) for the CLI to print.
    """

    id: ClassVar[str]
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    plugin: ClassVar[str] = ""

    def apply(
        self, data: Path, out: Path, secret: Path, params: dict[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        raise NotImplementedError


def detector_rng(seed: int, detector_id: str) -> np.random.Generator:
    """A generator seeded from the run seed and the detector id (stable across runs and hosts)."""
    import hashlib

    import numpy as np

    salt = int.from_bytes(hashlib.sha256(detector_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, salt])
