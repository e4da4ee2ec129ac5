"""Data taggants on scikit-learn digits: -log10 p of the top-1 test (a) and the rank test (b)
against the budget and eps, crafting time and verification time.

    nice -n 10 python benchmarks/taggants.py [--seeds 100 101] [--quick]

Writes ``docs/benchmarks/taggants.md`` (tables and an SVG plot). Each cell trains the demo's
suspect architecture from scratch on the protected training split; a clean twin per seed gives
the null reference. Seeds default to development seeds (100, 101), not the test seeds 0-4.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch
from provscan_taggants import demo
from provscan_taggants.detector import TaggantsDetector
from provscan_taggants.protect import TaggantConfig, protect
from provscan_taggants.secret import write_secret

from provscan.datasets import digits_dataset, split
from provscan.targets.base import ClassifierTarget

ROOT = Path(__file__).resolve().parents[1]
GRID = [(0.05, 96.0), (0.10, 32.0), (0.10, 64.0), (0.10, 96.0), (0.20, 96.0)]


def train(x: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
    from provscan.architectures import small_cnn
    from provscan.training import train_classifier

    torch.manual_seed(seed)
    cfg = {k: v for k, v in demo.VICTIM_CONFIG.items()}
    return train_classifier(small_cnn(**cfg), x, y, epochs=demo.EPOCHS, seed=seed)


def verify(module: torch.nn.Module, secret: Path) -> tuple[dict[str, float], float]:
    target = ClassifierTarget(module, 10, (1, 8, 8), location="bench", format="module")
    params = {"secret": str(secret), "k": 1, "augment": 4, "primary": "auto", "alpha": 0.001}
    t0 = time.perf_counter()
    ev = TaggantsDetector().run(target, params, np.random.default_rng(0))
    return {c.name: float(c.neg_log10_p or 0.0) for c in ev.claims}, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    ap.add_argument("--quick", action="store_true", help="one grid cell (smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks" / "taggants.md")
    ap.add_argument("--tmp", type=Path, default=Path("/tmp/provscan-bench-taggants"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.tmp.mkdir(parents=True, exist_ok=True)
    train_ds, test_ds = split(digits_dataset(), 0.2, seed=0)
    grid = GRID[3:4] if args.quick else GRID
    rows = []
    for seed in args.seeds:
        clean = train(train_ds.x, train_ds.y, seed * 1000 + 18)
        for budget, eps in grid:
            cfg = TaggantConfig(budget=budget, eps=eps)
            t0 = time.perf_counter()
            prot = protect(train_ds, cfg, seed)
            craft_s = time.perf_counter() - t0
            secret = args.tmp / f"secret-{seed}-{budget}-{eps}.json"
            write_secret(prot.secret, secret)
            model = train(prot.data.x, prot.data.y, seed * 1000 + 17)
            p_prot, verify_s = verify(model, secret)
            p_clean, _ = verify(clean, secret)
            from provscan.training import accuracy

            row = {"seed": seed, "budget": budget, "eps": eps, "craft_s": craft_s, "verify_s": verify_s,
                   "psnr": prot.summary["stealth"]["psnr_db"],
                   "rank": p_prot["rank"], "topk": p_prot["top-k"],
                   "clean_rank": p_clean["rank"], "clean_topk": p_clean["top-k"],
                   "acc": accuracy(model, test_ds.x, test_ds.y), "clean_acc": accuracy(clean, test_ds.x, test_ds.y)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    write_report(rows, args.out, grid, args.seeds)


def write_report(rows: list[dict], out: Path, grid: list[tuple[float, float]], seeds: list[int]) -> None:
    lines = ["# Data taggants benchmark (scikit-learn digits, 8x8, 1438 training images)", "",
             "Produced by `nice -n 10 python benchmarks/taggants.py --seeds "
             + " ".join(map(str, seeds)) + "` (one CPU thread).",
             f"Defaults: {json.dumps({k: v for k, v in dataclasses.asdict(TaggantConfig()).items() if k != 'device'})}.",
             f"Suspect model: `small-cnn` {demo.VICTIM_CONFIG} trained {demo.EPOCHS} epochs from scratch "
             "(the surrogate is `small-cnn` width 16, another seed); verification averages the "
             "scores of each key and 4 shifted copies.", "",
             "| budget | eps (/255) | PSNR dB | rank test -log10 p (per seed) | top-1 test -log10 p | "
             "clean twin rank / top-1 (max) | acc. protected / clean | crafting s | verification s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for budget, eps in grid:
        cell = [r for r in rows if r["budget"] == budget and r["eps"] == eps]
        if not cell:
            continue
        lines.append(
            f"| {budget:.2f} | {eps:g} | {np.mean([r['psnr'] for r in cell]):.1f} | "
            + ", ".join(f"{r['rank']:.2f}" for r in cell) + " | "
            + ", ".join(f"{r['topk']:.2f}" for r in cell) + " | "
            + f"{max(r['clean_rank'] for r in cell):.2f} / {max(r['clean_topk'] for r in cell):.2f} | "
            + f"{np.mean([r['acc'] for r in cell]):.3f} / {np.mean([r['clean_acc'] for r in cell]):.3f} | "
            + f"{np.mean([r['craft_s'] for r in cell]):.0f} | {np.mean([r['verify_s'] for r in cell]):.3f} |")
    lines += ["", "Times are wall-clock seconds on a shared 2-core machine (other jobs running), so "
              "compare them only within this table.", ""]
    try:
        from provscan.report.svg import line_plot

        series = {}
        eps0 = TaggantConfig().eps
        for name, key in ((f"rank test, eps {eps0:g}", "rank"), (f"top-1 test, eps {eps0:g}", "topk")):
            pts = sorted((r["budget"], r[key]) for r in rows if r["eps"] == eps0)
            if pts:
                budgets = sorted({b for b, _ in pts})
                series[name] = (budgets, [float(np.median([v for b, v in pts if b == bb])) for bb in budgets])
        if series:
            svg = line_plot(series, title=f"median -log10 p vs budget (eps {eps0:g}/255)", xlabel="budget (fraction of training set)", ylabel="-log10 p", markers=True, hline=3.0, hline_label="alpha 0.001")
            (out.parent / "taggants-budget.svg").write_bytes(svg)
            lines += ["![median -log10 p vs budget](taggants-budget.svg)", ""]
    except Exception as exc:  # noqa: BLE001 - the plot is optional
        lines += [f"(plot skipped: {exc})", ""]
    lines += ["Raw rows:", "", "```", *[json.dumps(r) for r in rows], "```", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
