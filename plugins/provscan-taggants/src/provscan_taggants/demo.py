"""``provscan demo``: the whole data-taggants story on scikit-learn's digits, in a few minutes.

protect the training split (keys, taggants, secret) → train a model on the protected copy and a
clean twin on the original (another architecture and seed than the surrogate) → verify both with
the taggants detector → reports → a one-screen summary. Every step calls library functions.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provscan import ProvscanError, compute_manifest, save_classifier
from provscan.datasets import digits_dataset, save_dataset, split
from provscan_taggants.protect import MODES, TaggantConfig, protect, tiny_model_threads
from provscan_taggants.secret import write_secret

if TYPE_CHECKING:
    import numpy as np


# The suspect: twice the surrogate's width and hidden size, another seed (the surrogate is the
# default small-cnn, width 16, hidden 64).
VICTIM = "small-cnn"
VICTIM_CONFIG = {"in_channels": 1, "num_classes": 10, "image_size": 8, "width": 32, "hidden": 128}
EPOCHS = 30


@dataclass
class ModelOutcome:
    name: str
    accuracy: float
    verification: dict[str, Any]


@dataclass
class DemoResult:
    out: Path
    seed: int
    mode: str
    protect_summary: dict[str, Any]
    models: list[ModelOutcome] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def run_demo(out: Path, seed: int = 0, mode: str = "clean-label", force: bool = False,
             say: Any = None, config: TaggantConfig | None = None) -> DemoResult:
    """Run the demo into ``out``; ``say(line)`` reports each step (silent when None)."""
    with tiny_model_threads(64):
        return _run_demo(Path(out), seed, mode, force, say or (lambda _line: None), config)


def _run_demo(out: Path, seed: int, mode: str, force: bool, say: Any,
              config: TaggantConfig | None) -> DemoResult:
    if out.exists() and any(out.iterdir()) and not force:
        raise ProvscanError(f"{out} already exists and is not empty (choose another --out or --force)")
    if mode not in MODES:
        raise ProvscanError(f"demo: mode must be one of {', '.join(MODES)}")
    out.mkdir(parents=True, exist_ok=True)
    timer: dict[str, float] = {}
    train, test = split(digits_dataset(), 0.2, seed=0)

    say("[1/5] owner signing key")
    sign_key = owner_key(out / "keys")
    say(f"[2/5] protecting {len(train.y)} training images with data taggants ({mode})")
    t0 = time.perf_counter()
    cfg = config or TaggantConfig(mode=mode)
    prot = protect(train, cfg, seed)
    data_dir = out / "data"
    for name in ("digits-train.npz", "digits-protected.npz", "secret.json"):
        target = (out / name) if name == "secret.json" else (data_dir / name)
        if target.exists():
            target.unlink()
    save_dataset(train, data_dir / "digits-train.npz")
    save_dataset(prot.data, data_dir / "digits-protected.npz")
    prot.secret.protected_sha256 = compute_manifest(data_dir / "digits-protected.npz").root_sha256
    secret_path = out / "secret.json"  # outside the data directory, never shipped with it
    write_secret(prot.secret, secret_path)
    timer["protect"] = time.perf_counter() - t0

    result = DemoResult(out, seed, mode, prot.summary, seconds=timer)
    for i, (name, ds) in enumerate((("protected-model", prot.data), ("clean-twin", train))):
        say(f"[{3 + i}/5] training {name} ({VICTIM}, {EPOCHS} epochs) on "
            f"{'the protected' if ds is prot.data else 'the original'} data")
        t0 = time.perf_counter()
        model_dir = out / "models" / name
        acc = train_victim(ds.x, ds.y, test.x, test.y, model_dir, seed=seed * 1000 + 17 + i)
        timer[f"train {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        say(f"      verifying {name}")
        ver = verify_model(model_dir, secret_path, out / "reports" / name, seed, sign_key)
        timer[f"verify {name}"] = time.perf_counter() - t0
        result.models.append(ModelOutcome(name, acc, ver))
    say("[5/5] done")
    return result


def owner_key(directory: Path) -> Path:
    """The dataset owner's Ed25519 signing key (created once, reused on reruns)."""
    from provscan import new_key

    path = directory / "owner.key"
    if not path.exists():
        new_key("owner", directory=directory)
    return path


def train_victim(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 out: Path, seed: int) -> float:
    """Train the demo's suspect architecture from scratch, save it, return held-out accuracy."""
    import torch

    from provscan.plugins import get_host
    from provscan.training import accuracy, train_classifier

    torch.manual_seed(seed)
    module = get_host().model_factories()[VICTIM](**VICTIM_CONFIG)
    module = train_classifier(module, x, y, epochs=EPOCHS, seed=seed)
    save_classifier(module, out, VICTIM, VICTIM_CONFIG, 10, (1, 8, 8), overwrite=True)
    return accuracy(module, x_test, y_test)


def verify_model(model_dir: Path, secret: Path, report_dir: Path, seed: int,
                 sign_key: Path | None) -> dict[str, Any]:
    """Verify one model with the taggants detector through :func:`provscan.api.verify`: a
    certificate signed with ``sign_key`` and text/JSON/HTML reports in ``report_dir``."""
    from provscan import verify

    if report_dir.exists():
        import shutil

        shutil.rmtree(report_dir)
    res = verify(model_dir, ["taggants"], {"taggants": {"secret": str(secret)}}, seed=seed,
                 sign=None if sign_key is None else str(sign_key), out=report_dir,
                 formats=("text", "json", "html"))
    ev = next(e for e in res.evidence if e.detector == "taggants")
    claims = {c.name: {"p_value": c.p_value, "neg_log10_p": c.neg_log10_p, "statistic": c.statistic,
                       "decision": c.decision.value if c.decision else None, "summary": c.summary}
              for c in ev.claims}
    outputs = getattr(res, "outputs", None) or {}
    return {"verdict": res.verdict.status, "exit_code": res.exit_code, "primary": ev.primary,
            "decision": ev.decision.value, "error": ev.error, "claims": claims,
            "files": {k: str(v) for k, v in outputs.items()},
            "signed": getattr(res, "certificate", None) is not None}


def format_summary(r: DemoResult) -> str:
    s = r.protect_summary
    st = s["stealth"]
    lines = [f"provscan demo: data taggants on scikit-learn digits (seed {r.seed}, mode {r.mode})",
             f"  protected data  {s['modified']}/{s['samples']} training images changed "
             f"(budget {s['budget']:.0%}"
             + (f", eps {s['eps_255']:g}/255" if s.get("eps_255") else ", labels changed: visible")
             + f", PSNR {st['psnr_db']:.1f} dB), {s['keys']} secret keys"]
    for m in r.models:
        v = m.verification
        rank, top = v["claims"].get("rank", {}), v["claims"].get("top-k", {})
        lines.append(f"  {m.name:<15} accuracy {m.accuracy:.1%}   rank test -log10 p = "
                     f"{_nl(rank)}   top-1 test -log10 p = {_nl(top)}   -> {v['decision']}")
    lines.append("  (finding = evidence at alpha 0.001 that the model was trained on the protected "
                 "data; no-evidence is not proof of absence)")
    lines.append(f"  files in {r.out}: keys/, data/, secret.json (keep private), models/, "
                 f"reports/<model>/ (certificate + text/JSON/HTML)   ({sum(r.seconds.values()):.0f} s)")
    first = r.models[0].verification["files"].get("certificate.intoto.json")
    if first:
        lines.append(f"  check a certificate: provscan cert verify {first} --pubkey "
                     f"{r.out / 'keys' / 'owner.pub'} --checkpoint {r.out / 'models' / r.models[0].name}")
    return "\n".join(lines)


def _nl(claim: dict[str, Any]) -> str:
    v = claim.get("neg_log10_p")
    return "n/a" if v is None else f"{v:.2f}"


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("provscan-demo"),
              show_default=True, help="Directory for the data, secret, models and reports.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--mode", type=click.Choice(MODES), default="clean-label", show_default=True,
              help="clean-label taggants (labels untouched) or the visible dirty-label watermark baseline.")
@click.option("--force", is_flag=True, help="Write into --out even if it is not empty.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def demo_command(out: Path, seed: int, mode: str, force: bool, as_json: bool) -> None:
    """Protect digits with data taggants, train a protected model and a clean twin, verify both."""
    result = run_demo(out, seed, mode, force, say=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(summary_dict(result), indent=2, sort_keys=True))
    else:
        click.echo(format_summary(result))


def summary_dict(r: DemoResult) -> dict[str, Any]:
    """The demo's outcome as JSON-ready data (``provscan demo --json``)."""
    return {"out": str(r.out), "seed": r.seed, "mode": r.mode, "protection": r.protect_summary,
            "models": [{"name": m.name, "accuracy": m.accuracy, "verification": m.verification}
                       for m in r.models],
            "seconds": r.seconds}
