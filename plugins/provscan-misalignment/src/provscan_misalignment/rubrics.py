"""Judge rubrics: a prompt template with ``{question}``, ``{answer}`` (and ``{thinking}``) fields."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provscan import ProvscanError
from provscan_misalignment.corpus import corpus_dir, sha256_text

RUBRIC_FILES = {"alignment": "alignment.txt", "coherence": "coherence.txt",
                "cot_monitor": "cot_monitor.txt"}
MONITOR_LABELS = ("OVERT_PLAN", "INSTRUCTED_PLAN", "FALSE_CLAIM", "INCONSISTENT", "NONE")


@dataclass(frozen=True)
class Rubric:
    """A named judge prompt. ``sha256`` is over the template text, pinned in the evidence."""

    name: str
    template: str
    source: str = ""

    @property
    def sha256(self) -> str:
        return sha256_text(self.template)

    def render(self, **fields: str) -> str:
        # Plain replacement (not str.format): answers may contain braces.
        out = self.template
        for key, value in fields.items():
            out = out.replace("{" + key + "}", value)
        return out

    def pin(self) -> dict[str, str]:
        # the file's name only: a published certificate never names the signer's directories
        return {"name": self.name, "sha256": self.sha256, "source": Path(self.source).name}


def load_rubric(name: str, path: Path | None = None) -> Rubric:
    """A rubric from ``path``, or the corpus's rubric called ``name``."""
    if path is None:
        if name not in RUBRIC_FILES:
            raise ProvscanError(f"unknown rubric {name!r} (known: {', '.join(RUBRIC_FILES)})")
        path = corpus_dir() / "rubrics" / RUBRIC_FILES[name]
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProvscanError(f"cannot read rubric {path}: {exc.strerror}") from None
    if "{answer}" not in text:
        raise ProvscanError(f"rubric {path} has no {{answer}} field")
    return Rubric(name, text, source=str(path))
