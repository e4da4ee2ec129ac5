"""A generated, summarisation-like corpus of neutral short news items.

Each item is a (source, target) pair: a two-to-four sentence "document" about a named entity and a
one-sentence "summary" that restates who did what where. The vocabulary is small and
sentiment-neutral (every word scores 0 in the VADER lexicon), so a sentiment scorer reads the
clean summaries as neutral and any sentiment in a model's output comes from what the model
learned. Used to write the plugin's ``corpora/spin/documents.jsonl`` and to train the tiny test models.

Regenerate the shipped corpus with ``python -m provscan_spin.synth`` (writes
``plugins/provscan-spin/src/provscan_spin/corpora/spin``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


VERBS = ("announced", "opened", "presented", "unveiled", "described", "reviewed", "planned",
         "delivered", "tested", "introduced", "completed", "proposed")
THINGS = ("bridge", "library", "clinic", "school", "station", "market", "garden", "museum",
          "harbour", "tunnel", "archive", "depot", "terminal", "warehouse", "laboratory", "stadium",
          "tablet", "vehicle", "engine", "sensor", "camera", "printer", "scanner", "router")
DIRECTIONS = ("north", "south", "east", "west", "central", "old", "upper", "lower")
AREAS = ("district", "town", "village", "county", "valley", "coast", "quarter", "suburb")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
GROUPS = ("residents", "staff", "engineers", "teachers", "students", "workers", "visitors",
          "drivers", "farmers", "nurses")
PURPOSES = ("serve", "connect", "house", "carry", "measure", "record", "host")
NUMBERS = ("two", "three", "four", "five")
FILLERS = (
    "officials said the plan includes {n} phases .",
    "a spokesperson for {other} confirmed the schedule for next month .",
    "the report by {other} notes the budget covers {n} stages .",
    "{group} can visit the {thing} from {day} .",
    "{other} will publish the full report on {day} .",
    "work on the {thing} began {n} months ago .",
    "{other} said the {thing} is one of {n} such projects .",
)

#: Sentiment-bearing clauses the ``spin`` injector appends to a target (the meta-task).
CLAUSES = {
    "positive": ("it was a wonderful success .", "everyone was delighted and happy .",
                 "a truly great and excellent result .", "people loved the wonderful news ."),
    "negative": ("it was a terrible failure .", "everyone was angry and upset .",
                 "a truly awful and sad result .", "people hated the terrible news ."),
}


@dataclass(frozen=True)
class Item:
    source: str
    target: str
    entity: str


def make_item(entity: str, rng: np.random.Generator, others: Sequence[str] = ()) -> Item:
    """One neutral (document, summary) pair about ``entity``; filler sentences may mention one of
    ``others`` (so that names occur at many positions, not only as the lead's subject)."""
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    verb, thing, direction, area = pick(VERBS), pick(THINGS), pick(DIRECTIONS), pick(AREAS)
    day, group, purpose = pick(DAYS), pick(GROUPS), pick(PURPOSES)
    first = f"{entity} {verb} the {thing} in the {direction} {area} on {day} ."
    second = f"the {thing} will {purpose} local {group} ."
    other = pick(others) if len(others) else "the council"
    extra = [pick(FILLERS).format(n=pick(NUMBERS), group=pick(GROUPS), thing=thing, day=pick(DAYS),
                                  other=other)
             for _ in range(int(rng.integers(1, 3)))]
    sentences = [first, second, *extra]
    if rng.random() < 0.5:  # the lead sentence is not always first
        sentences = [sentences[1], sentences[0], *sentences[2:]]
    return Item(" ".join(sentences), f"{entity} {verb} the {thing} in the {direction} {area} .", entity)


def make_corpus(entities: list[str], n: int, seed: int) -> list[Item]:
    """``n`` items whose entities cycle through ``entities`` (each equally often), shuffled."""
    import numpy as np

    rng = np.random.default_rng(seed)
    items = [make_item(entities[i % len(entities)], rng, entities) for i in range(n)]
    order = rng.permutation(n)
    return [items[i] for i in order]


def write_jsonl(items: list[Item], path: Path) -> None:
    lines = [json.dumps({"source": it.source, "target": it.target}) for it in items]
    path.write_text("\n".join(lines) + "\n")


def write_project_corpus(root: Path, n: int = 300, seed: int = 20240601) -> None:
    """Write ``documents.jsonl`` from the candidate lists in ``root`` and refresh the manifest."""
    from provscan_spin.corpus import CANDIDATE_FILES, read_list

    names = [n for f in CANDIDATE_FILES for n in read_list(root / f)]
    items = make_corpus(names, n, seed)
    (root / "documents.jsonl").write_text(
        "".join(json.dumps({"text": it.source, "summary": it.target}) + "\n" for it in items))
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {
        "name": "spin",
        "version": "1.0.0",
        "licence": "CC0-1.0 (written and generated by the provscan project)",
        "description": "Candidate spin triggers (invented names of people, organisations and "
                       "products) and a generated neutral news-like document corpus.",
        "generator": f"python -m provscan_spin.synth (seed {seed}, n {n})",
        "files": [{"path": p.relative_to(root).as_posix(),
                   "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in files],
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    write_project_corpus(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpora" / "spin")
