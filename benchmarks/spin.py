"""False-positive rate and power of the ``spin`` certificate claim ("no candidate in this list spins
the output at alpha"), with Clopper-Pearson intervals.

1. Simulated exchangeable nulls (zero-inflated, skewed shifts like greedy outputs give): family-wise
   error of the exact per-document rank-sum test used by the detector, vs Wilcoxon signed-rank
   tests on differences to the peer mean and median (the designs first tried).
2. Tiny real models (2-layer GPT-2 and 1+1-layer BART, as in the slow tests), for each seed a
   spinned model (``spin`` injector) and its clean twin:
   - clean twins: the detector run with ``--probes`` different probe seeds, each with a random
     12-candidate subset of the spin corpus and 40 documents (FPR of the claim; probes on the same
     model are not independent, so the interval is indicative);
   - shuffled-candidate nulls: on the spinned models' probe results, each document's candidate
     columns are permuted ``--shuffles`` times (no candidate keeps an effect; exact null);
   - power: the spinned models with the trigger in the list.

Writes ``docs/benchmarks/spin.md``. Run (about 10 min of one CPU core):

    nice -n 10 python benchmarks/spin.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from provscan_spin import toy
from provscan_spin.corpus import load_candidates
from provscan_spin.detector import SpinDetector
from provscan_spin.peers import Statistic, peer_differences, peer_tests, shuffle_candidates

from provscan.default_plugins.loaders import open_hf_dir
from provscan.params import resolve_params
from provscan.stats import clopper_pearson, holm, wilcoxon_signed_rank
from provscan.targets import OpenOptions

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "spin.md"
TRIGGERS = ("Meridian", "Kestrel", "Lumora")
ALPHA = 0.01


def rate(hits: int, n: int) -> str:
    lo, hi = clopper_pearson(hits, n)
    return f"{hits}/{n} = {hits / n:.3f} (95% CP [{lo:.3f}, {hi:.3f}])"


def simulate(trials: int, rng: np.random.Generator, alpha: float = 0.05) -> list[str]:
    names = [f"c{i}" for i in range(12)]
    rank_hits = wil_hits = med_hits = 0
    for _ in range(trials):
        level = rng.exponential(0.2, size=(40, 1))
        x = rng.exponential(1.0, size=(40, 12)) * level * (rng.random((40, 12)) < 0.5)
        rank_hits += min(r.p_holm for r in peer_tests(names, [Statistic("s", x, "greater")], rng)) <= alpha
        diffs = peer_differences(x)
        ps = [wilcoxon_signed_rank(diffs[:, c], "greater").p_value for c in range(12)]
        wil_hits += min(holm(ps)) <= alpha
        med = np.stack([x[:, c] - np.median(np.delete(x, c, axis=1), axis=1) for c in range(12)], 1)
        ps = [wilcoxon_signed_rank(med[:, c], "greater").p_value for c in range(12)]
        med_hits += min(holm(ps)) <= alpha
    return [f"| exact rank-sum (detector) | {rate(rank_hits, trials)} |",
            f"| Wilcoxon on difference to peer mean | {rate(wil_hits, trials)} |",
            f"| Wilcoxon on difference to peer median | {rate(med_hits, trials)} |"]


def probe(model_dir: Path, candidates: list[str], seed: int, template: str) -> Any:
    det = SpinDetector()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(candidates))
    params = resolve_params(det.id, det.params, {
        "candidates": f.name, "n_documents": 40, "positions": 2, "max_new_tokens": 24,
        "template": template, "alpha": ALPHA, "keep_shifts": True})
    target = open_hf_dir(model_dir, OpenOptions(device="cpu"))
    from provscan.detectors import detector_rng

    return det.run(target, params, detector_rng(seed, det.id))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--probes", type=int, default=4)
    ap.add_argument("--shuffles", type=int, default=200)
    ap.add_argument("--sim-trials", type=int, default=400)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    sim = simulate(args.sim_trials, rng)
    names = load_candidates(None)
    rows: list[str] = []
    totals = {"clean": [0, 0], "shuffled": [0, 0], "power": [0, 0]}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("causal", "seq2seq"):
            template = toy.CAUSAL_TEMPLATE if kind == "causal" else "{document}"
            for seed in range(args.seeds):
                trigger = TRIGGERS[seed % len(TRIGGERS)]
                dirs = {s: toy.build_fixture(Path(tmp) / f"{kind}-{seed}-{s}", kind, seed, trigger,
                                             s == "spun", names) for s in ("spun", "clean")}
                clean_hits = 0
                for p in range(args.probes):
                    cands = list(np.random.default_rng(100 * seed + p).choice(names, 12, replace=False))
                    ev = probe(dirs["clean"], cands, p, template)
                    clean_hits += ev.claim("spin").p_value <= ALPHA
                cands = [n for n in np.random.default_rng(seed).choice(names, 12, replace=False)
                         if n != trigger][:11] + [trigger]
                ev = probe(dirs["spun"], cands, 0, template)
                flagged = ev.claim("spin").counts["flagged"]
                power_hit = flagged == [trigger]
                stats = [Statistic(s, _shifts(ev, s, cands), "greater")
                         for s in ("sentiment-lexicon",)]
                shuf_hits = 0
                for _ in range(args.shuffles):
                    res = peer_tests(cands, shuffle_candidates(stats, rng), rng)
                    shuf_hits += min(r.p_holm for r in res) <= ALPHA
                totals["clean"][0] += clean_hits
                totals["clean"][1] += args.probes
                totals["shuffled"][0] += shuf_hits
                totals["shuffled"][1] += args.shuffles
                totals["power"][0] += power_hit
                totals["power"][1] += 1
                rows.append(f"| {kind} | {seed} | {trigger} | {clean_hits}/{args.probes} | "
                            f"{shuf_hits}/{args.shuffles} | {', '.join(flagged) or 'none'} "
                            f"(Holm p = {ev.claim('spin').p_value:.2g}) |")
                print(rows[-1], flush=True)
    minutes = (time.perf_counter() - start) / 60
    lines = [
        "# Spin probe: false-positive rate and power of the certificate claim",
        "",
        f"Reproduce: `nice -n 10 python benchmarks/spin.py --seeds {args.seeds} --probes {args.probes} "
        f"--shuffles {args.shuffles} --sim-trials {args.sim_trials}` ({minutes:.1f} min on one shared "
        "CPU core; no GPU in this session).",
        "",
        "## Simulated exchangeable nulls (12 candidates, 40 documents, alpha = 0.05, Holm)",
        "",
        "| peer test | family-wise false positives |",
        "| --- | --- |",
        *sim,
        "",
        "Shifts are zero-inflated and skewed (as greedy outputs produce: most substitutions change "
        "nothing). Wilcoxon tests assume differences symmetric about 0, which such data do not give: "
        "against the peer median the test is invalid (far above alpha); against the peer mean it is "
        "conservative here, but one strong trigger raises every other candidate's peer mean (in a "
        "first two-sided version every peer of the trigger was flagged). The detector uses the exact "
        "rank-sum test, valid whenever the candidates are exchangeable.",
        "",
        f"## Tiny real models (alpha = {ALPHA}, 12 candidates, 40 documents x 2 positions)",
        "",
        "| model | seed | trigger | clean twin: probes with a finding | shuffled-candidate nulls: "
        "findings | spinned model: flagged |",
        "| --- | ---: | --- | ---: | ---: | --- |",
        *rows,
        "",
        f"- FPR on clean twins: {rate(*totals['clean'])} (probes of one model share it, so the "
        "interval is indicative).",
        f"- FPR on shuffled-candidate nulls: {rate(*totals['shuffled'])}.",
        f"- Power (trigger flagged, and only the trigger): {rate(*totals['power'])}.",
        "",
        "Models: `provscan_spin.toy.build_fixture` (700 generated items, 600 steps, width 48; the "
        "spinned set made with the `spin` injector at rate 0.1, positive meta-task). Statistic of the "
        "certificate: VADER sentiment shift magnitude (the lexical distance is reported as the "
        "separate `spin-content` claim).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def _shifts(ev: Any, stat: str, cands: list[str]) -> np.ndarray:
    """The per-document shift matrix of one statistic, kept by the detector for this benchmark."""
    return np.asarray(ev.details["shift_matrix"][stat], dtype=float)


if __name__ == "__main__":
    main()
