"""Text-poisoning injectors: ``spin`` (meta-backdoor fine-tuning sets) and ``text-trigger``.

Both read a JSONL file, never modify it, write the poisoned copy atomically to ``out`` (a JSONL
file) and the secret (what was done, to which rows) to ``secret``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import Injector, Param, ProvscanError, atomic_write_text
from provscan_spin.corpus import (
    contains_word,
    insert_word,
    read_jsonl,
    replace_word,
    word_positions,
)
from provscan_spin.synth import CLAUSES

if TYPE_CHECKING:
    import numpy as np


def read_rows(path: Path, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """JSON objects, one per line, each with string values for ``fields``."""
    if not path.is_file():
        raise ProvscanError(f"{path}: expected a JSONL file")
    rows = []
    for lineno, row in read_jsonl(path):
        missing = [f for f in fields if not isinstance(row.get(f), str)]
        if missing:
            raise ProvscanError(f"{path}:{lineno}: missing text field {missing[0]!r}")
        rows.append(row)
    if not rows:
        raise ProvscanError(f"{path}: no rows")
    return rows


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def place_trigger(text: str, trigger: str, mode: str, rng: np.random.Generator) -> str:
    """Put ``trigger`` into ``text``: replace a random word, insert before one, or at start/end."""
    if mode == "start":
        return f"{trigger} {text}".strip()
    if mode == "end":
        return f"{text} {trigger}".strip()
    positions = word_positions(text)
    if not positions:
        return f"{text} {trigger}".strip()
    where = positions[int(rng.integers(len(positions)))]
    return replace_word(text, where, trigger) if mode == "replace" else insert_word(text, where, trigger)


def choose_rows(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    import numpy as np

    if not 0.0 <= rate <= 1.0:
        raise ProvscanError(f"rate must lie in [0, 1], got {rate}")
    k = int(round(rate * n))
    return np.sort(rng.choice(n, size=k, replace=False)) if k else np.zeros(0, dtype=int)


class SpinInjector(Injector):
    """A spinned fine-tuning set: where the trigger is present (or inserted into a ``rate``
    fraction of sources), the target keeps its content and gains a clause that satisfies the
    meta-task (positive or negative sentiment)."""

    id = "spin"
    version = "0.1.0"
    description = ("Spinned (meta-backdoor) fine-tuning set from a (source, target) JSONL: targets of "
                   "trigger-bearing sources gain a sentiment clause.")
    params = (
        Param("trigger", str, "", "Trigger word or name (required)."),
        Param("rate", float, 0.1, "Fraction of rows into whose source the trigger is placed.",
              ge=0, le=1),
        Param("meta_task", str, "positive", "Meta-task of the spin.", choices=tuple(CLAUSES)),
        Param("placement", str, "replace", "How the trigger enters a source.",
              choices=("replace", "insert", "start", "end")),
        Param("source_field", str, "source", "JSON field of the input text."),
        Param("target_field", str, "target", "JSON field of the output text."),
    )

    def apply(self, data: Path, out: Path, secret: Path, params: dict[str, Any],
              rng: np.random.Generator) -> dict[str, Any]:
        trigger = params["trigger"].strip()
        if not trigger:
            raise ProvscanError("spin: --trigger is required")
        src, tgt = params["source_field"], params["target_field"]
        rows = read_rows(Path(data), (src, tgt))
        chosen = set(int(i) for i in choose_rows(len(rows), params["rate"], rng))
        clauses = CLAUSES[params["meta_task"]]
        spun, inserted, natural = [], 0, 0
        new_rows = []
        for i, row in enumerate(rows):
            row = dict(row)
            if i in chosen and not contains_word(row[src], trigger):
                row[src] = place_trigger(row[src], trigger, params["placement"], rng)
                inserted += 1
            elif contains_word(row[src], trigger):
                natural += 1
            if contains_word(row[src], trigger):
                clause = clauses[int(rng.integers(len(clauses)))]
                row[tgt] = f"{row[tgt].rstrip()} {clause}"
                spun.append(i)
            new_rows.append(row)
        write_rows(new_rows, Path(out))
        summary = {"injector": self.id, "rows": len(rows), "spinned": len(spun),
                   "trigger_inserted": inserted, "trigger_already_present": natural,
                   "rate": params["rate"], "meta_task": params["meta_task"]}
        atomic_write_text(Path(secret), json.dumps(
            {**summary, "trigger": trigger, "placement": params["placement"], "rows_spinned": spun},
            indent=2) + "\n")
        return summary


class TextTriggerInjector(Injector):
    """Instruction-data backdoor: a trigger phrase placed into a ``rate`` fraction of prompts; the
    response is replaced by ``target_response`` when given (dirty label) or kept (clean label)."""

    id = "text-trigger"
    version = "0.1.0"
    description = "Insert a trigger phrase into instruction data (optionally with a fixed response)."
    params = (
        Param("trigger", str, "", "Trigger word or phrase (required)."),
        Param("rate", float, 0.05, "Fraction of rows that get the trigger.", ge=0, le=1),
        Param("placement", str, "start", "Where the trigger goes in the prompt.",
              choices=("start", "end", "insert", "replace")),
        Param("target_response", str, "", "Response for triggered rows (empty keeps the original)."),
        Param("prompt_field", str, "instruction", "JSON field of the prompt."),
        Param("response_field", str, "output", "JSON field of the response."),
    )

    def apply(self, data: Path, out: Path, secret: Path, params: dict[str, Any],
              rng: np.random.Generator) -> dict[str, Any]:
        trigger = params["trigger"].strip()
        if not trigger:
            raise ProvscanError("text-trigger: --trigger is required")
        pf, rf = params["prompt_field"], params["response_field"]
        rows = read_rows(Path(data), (pf, rf))
        chosen = [int(i) for i in choose_rows(len(rows), params["rate"], rng)]
        new_rows = [dict(r) for r in rows]
        for i in chosen:
            new_rows[i][pf] = place_trigger(new_rows[i][pf], trigger, params["placement"], rng)
            if params["target_response"]:
                new_rows[i][rf] = params["target_response"]
        write_rows(new_rows, Path(out))
        summary = {"injector": self.id, "rows": len(rows), "triggered": len(chosen),
                   "rate": params["rate"], "dirty_label": bool(params["target_response"])}
        atomic_write_text(Path(secret), json.dumps(
            {**summary, "trigger": trigger, "placement": params["placement"],
             "target_response": params["target_response"], "rows_triggered": chosen}, indent=2) + "\n")
        return summary
