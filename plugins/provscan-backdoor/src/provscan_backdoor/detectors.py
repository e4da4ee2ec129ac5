"""``backdoor.max-margin`` and ``backdoor.trigger-inversion``.

Each reduces the model to per-class statistics (one batched optimisation over all classes), then
to one score naming the suspect class. Three kinds of claims come out:

- ``calibrated`` (primary): conformal p-value of the score against reference clean models
  (finite-sample valid when the references are exchangeable with the model under the null);
  inconclusive when no references are given or too few to ever reach alpha.
- ``mad-anomaly``: the MAD anomaly index of the suspect class with the usual cut-off of 2; a
  heuristic, reported without a p-value.
- ``gamma-null`` (max-margin only): the MM-BD paper's p-value from a gamma law fitted to the other
  classes; labelled approximate (its false-positive rate with 10 classes is not controlled).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from provscan import Claim, ClassifierTarget, Decision, Detector, Evidence, Param, ProvscanError
from provscan.stats import conformal_p_value
from provscan_backdoor.references import load_reference_scores, statistic_key

if TYPE_CHECKING:
    import numpy as np

    from provscan_backdoor import optimize

MAD_CUTOFF = 2.0
COMMON = (
    Param("classes", str, "all", "Classes to probe: 'all' or a comma-separated list of indices."),
    Param("alpha", float, 0.05, "Significance level of the calibrated claim.", gt=0, lt=1),
    Param("references", str, None, "Reference clean models: a directory of checkpoints, or a "
          "scores file from `provscan backdoor score-references`.", path=True),
)


def parse_classes(text: str, num_classes: int) -> list[int]:
    if str(text).strip().lower() == "all":
        return list(range(num_classes))
    try:
        classes = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        raise ProvscanError(f"classes {text!r}: expected 'all' or comma-separated integers") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise ProvscanError(f"classes: {bad[0]} is not a class of this model (0..{num_classes - 1})")
    if len(classes) < 3:
        raise ProvscanError("classes: probe at least 3 classes (the statistics compare classes)")
    return classes


def mad_index(values: np.ndarray, side: str) -> np.ndarray:
    """Distance from the median in units of 1.4826 * MAD, towards ``side`` ('high' or 'low')."""
    import numpy as np

    med = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - med))
    dev = values - med if side == "high" else med - values
    return dev / mad if mad > 0 else np.where(dev > 0, np.inf, 0.0)


class _BackdoorDetector(Detector):
    applies_to = ("classifier",)
    side: ClassVar[str]  # 'high': large statistics are suspicious; 'low': small ones
    stat_params: ClassVar[tuple[str, ...]]
    statistic_name: ClassVar[str]

    def per_class(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                  seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def score(self, values: np.ndarray) -> tuple[float, int]:
        """Relative excess of the most extreme class over the median class, and its position."""
        import numpy as np

        med = float(np.median(values))
        if self.side == "high":
            i = int(np.argmax(values))
            return (float(values[i]) - med) / max(abs(med), 1e-6), i
        i = int(np.argmin(values))
        return med / max(float(values[i]), 1e-6) - 1.0, i

    def model_score(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                    seed: int) -> float:
        return self.score(self.per_class(target, classes, params, seed)[0])[0]

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        if getattr(target, "module", None) is None:
            return self._inconclusive(target, params, "white-box detector: the target exposes no weights")
        alpha = float(params["alpha"])
        if not 0.0 < alpha < 1.0:
            raise ProvscanError(f"alpha {alpha} is outside (0, 1)")
        classes = parse_classes(params["classes"], target.num_classes)
        seed = int(rng.integers(2**31 - 1))
        start = time.perf_counter()
        values, extra = self.per_class(target, classes, params, seed)
        score, pos = self.score(values)
        suspect = classes[pos]
        claims = [self._calibrated(target, classes, params, seed, score, suspect, alpha),
                  self._mad_claim(values, pos, suspect), *self.extra_claims(values, pos, suspect, alpha)]
        details = {"classes": classes, "per_class": {str(c): float(v) for c, v in zip(classes, values)},
                   "statistic": self.statistic_name, "score": score, "target_class": suspect,
                   "optimisation_seed": seed, "seconds": time.perf_counter() - start,
                   **extra.pop("details", {})}
        return Evidence(self.id, self.version, self.plugin, target.kind, claims, primary="calibrated",
                        params=params, details=details, figures=extra.get("figures", {}))

    def _calibrated(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                    seed: int, score: float, suspect: int, alpha: float) -> Claim:
        import numpy as np

        null = (f"the model is exchangeable with the reference clean models (no backdoor of the kinds "
                f"{self.id} probes, under these parameters)")
        test = "conformal rank of the score among reference clean models: p = (1 + #{ref >= s}) / (n + 1)"
        if not params["references"]:
            return Claim("calibrated", null, test, score, None, alpha, 0, decision=Decision.INCONCLUSIVE,
                         counts={"target_class": suspect},
                         summary="no reference clean models given (param references): no calibrated p-value")
        key = statistic_key(self.id, self.version, params, self.stat_params)
        refs, where = load_reference_scores(
            params["references"], key, target,
            lambda ref: self.model_score(ref, classes, params, seed))
        p = conformal_p_value(score, refs)
        n = len(refs)
        counts = {"target_class": suspect, "n_references": n,
                  "references_at_least_score": int(np.sum(np.asarray(refs) >= score)),
                  "reference_scores": [float(r) for r in refs], "references": where}
        if (1.0 / (n + 1)) > alpha:
            need = math.ceil(1.0 / alpha) - 1
            return Claim("calibrated", null, test, score, p, alpha, n, counts=counts,
                         decision=Decision.INCONCLUSIVE,
                         summary=f"{n} references cannot reach alpha {alpha} (need at least {need})")
        verdict = "backdoor suspected" if p <= alpha else "no evidence of a backdoor"
        return Claim("calibrated", null, test, score, p, alpha, n, exact=True, counts=counts,
                     summary=f"{verdict}: target class {suspect}, score {score:.3g}, "
                             f"p = {p:.3g} against {n} reference clean models")

    def _mad_claim(self, values: np.ndarray, pos: int, suspect: int) -> Claim:
        index = float(mad_index(values, self.side)[pos])
        flagged = index > MAD_CUTOFF
        return Claim(
            "mad-anomaly", "no class is an outlier among the per-class statistics",
            f"heuristic: MAD anomaly index > {MAD_CUTOFF} (Neural Cleanse); not a p-value",
            index, None, 0.0, len(values), exact=False,
            decision=Decision.FINDING if flagged else Decision.NO_EVIDENCE,
            counts={"target_class": suspect, "cutoff": MAD_CUTOFF},
            summary=f"class {suspect}: anomaly index {index:.2f} "
                    f"({'above' if flagged else 'not above'} the heuristic cut-off {MAD_CUTOFF})")

    def extra_claims(self, values: np.ndarray, pos: int, suspect: int, alpha: float) -> list[Claim]:
        return []

    def _inconclusive(self, target: Any, params: dict[str, Any], reason: str) -> Evidence:
        claim = Claim("calibrated", "n/a", "none", None, None, float(params["alpha"]), 0,
                      decision=Decision.INCONCLUSIVE, summary=reason)
        return Evidence(self.id, self.version, self.plugin, getattr(target, "kind", "unknown"),
                        [claim], primary="calibrated", params=params)


class MaxMargin(_BackdoorDetector):
    id = "backdoor.max-margin"
    version = "0.1.0"
    description = ("MM-BD (Wang et al., S&P 2024): per class, the largest logit margin reachable from "
                   "random inputs; a class whose margin towers over the others suggests a backdoor. "
                   "No clean data needed.")
    side = "high"
    statistic_name = "max - median of per-class maximum margins, relative to the median"
    stat_params = ("classes", "steps", "restarts", "lr")
    params = (
        *COMMON,
        Param("steps", int, 200, "Optimisation steps.", ge=1, le=100_000),
        Param("restarts", int, 20, "Random starting images per class.", ge=1, le=10_000),
        Param("lr", float, 0.05, "Adam step size on the input pixels.", gt=0),
    )

    def per_class(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                  seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        from provscan_backdoor import optimize

        _check_positive(params, ("steps", "restarts"))
        margins, images = optimize.max_margins(target, classes, int(params["steps"]),
                                               int(params["restarts"]), float(params["lr"]), seed)
        return margins, {"images": images}

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        ev = super().run(target, params, rng)
        if ev.details.get("per_class"):
            from provscan import svg

            cls = ev.details["classes"]
            vals = [ev.details["per_class"][str(c)] for c in cls]
            ev.figures["Maximum achievable logit margin per class (suspect in red)"] = svg.bar_chart(
                vals, [str(c) for c in cls], highlight=[cls.index(ev.details["target_class"])],
                xlabel="class", ylabel="max margin")
        return ev

    def extra_claims(self, values: np.ndarray, pos: int, suspect: int, alpha: float) -> list[Claim]:
        import numpy as np
        from scipy import stats as st

        null_vals = np.delete(values, pos)
        try:
            shape, loc, scale = st.gamma.fit(null_vals)
            p = float(1.0 - st.gamma.cdf(values[pos], shape, loc=loc, scale=scale) ** len(values))
        except (ValueError, RuntimeError, FloatingPointError):
            p = float("nan")
        ok = math.isfinite(p)
        return [Claim(
            "gamma-null", "the largest per-class margin comes from the same law as the others",
            "MM-BD: gamma law fitted to the other classes' margins, P[max of K >= observed] "
            "(approximate: parametric fit to K-1 values; false-positive rate not controlled)",
            float(values[pos]), max(p, 0.0) if ok else None, alpha, len(values), exact=False,
            counts={"target_class": suspect},
            summary=f"class {suspect}: approximate p = {p:.3g}" if ok else "gamma fit failed")]


class TriggerInversion(_BackdoorDetector):
    id = "backdoor.trigger-inversion"
    version = "0.2.0"
    description = ("Neural Cleanse (Wang et al., S&P 2019): per class, the smallest mask (L1) of a "
                   "trigger that sends clean inputs to that class; an unusually small one suggests "
                   "a backdoor. Needs a small clean set (clean_data).")
    side = "low"
    statistic_name = "median of per-class minimal mask L1 norms over the smallest, minus one"
    stat_params = ("classes", "steps", "lr", "n_clean", "success", "patience")
    _clean_cache: np.ndarray | None = None
    _last_inversion: optimize.Inversion | None = None
    params = (
        *COMMON,
        Param("clean_data", str, None, "Clean images (.npz or image folder) to stamp triggers on.",
              path=True),
        Param("n_clean", int, 32, "Clean images used (a seeded sample).", ge=1, le=100_000),
        Param("steps", int, 300, "Most optimisation steps (a class usually stops far earlier).",
              ge=1, le=100_000),
        Param("patience", int, 10, "Early stopping: a class stops once its smallest successful mask "
              "has not shrunk by 1 % for this many steps after the penalty found its balance "
              "(0: run all steps).", ge=0),
        Param("lr", float, 0.1, "Adam step size on the mask and pattern.", gt=0),
        Param("success", float, 0.99, "Attack success a reversed trigger must reach.", gt=0, le=1),
    )

    @classmethod
    def input_hints(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The clean images have the model's input shape (their labels need not cover every
        class, so the class count is not inferred from them)."""
        if not params.get("clean_data"):
            return {}
        from provscan.datasets import load_dataset

        return {"input_shape": load_dataset(Path(params["clean_data"])).input_shape}

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        if not params["clean_data"]:
            return self._inconclusive(target, params, "trigger inversion needs clean images "
                                      "(param clean_data): not run")
        self._clean_cache = None
        ev = super().run(target, params, rng)
        inv = self._last_inversion
        if inv is not None and ev.details.get("per_class"):
            from provscan import svg

            cls = ev.details["classes"]
            suspect = cls.index(ev.details["target_class"])
            labels = [f"{c}: L1 {n:.1f}" for c, n in zip(cls, inv.norms)]
            ev.figures["Reversed triggers, mask x pattern (suspect framed)"] = svg.image_grid(
                inv.masks * inv.patterns, labels, cols=min(len(cls), 10), highlight=[suspect])
            ev.figures["Reversed masks"] = svg.image_grid(inv.masks, labels, cols=min(len(cls), 10),
                                                          highlight=[suspect])
            ev.details.update(reached=[bool(r) for r in inv.reached],
                              success=[float(s) for s in inv.success],
                              steps_run=[int(n) for n in inv.steps])
        return ev

    def clean_images(self, target: ClassifierTarget, params: dict[str, Any], seed: int) -> np.ndarray:
        import numpy as np

        if self._clean_cache is None:
            from provscan.datasets import load_dataset

            ds = load_dataset(Path(params["clean_data"]))
            if ds.input_shape != target.input_shape:
                raise ProvscanError(f"clean_data {params['clean_data']}: images {ds.input_shape}, "
                                    f"the model takes {target.input_shape}")
            n = min(int(params["n_clean"]), len(ds.x))
            idx = np.sort(np.random.default_rng(seed).choice(len(ds.x), size=n, replace=False))
            self._clean_cache = ds.x[idx]
        return self._clean_cache

    def per_class(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                  seed: int) -> tuple[np.ndarray, dict[str, Any]]:
        from provscan_backdoor import optimize

        _check_positive(params, ("steps", "n_clean"))
        if int(params["patience"]) < 0:
            raise ProvscanError(f"patience must be at least 0, got {params['patience']}")
        if not 0.0 < float(params["success"]) <= 1.0:
            raise ProvscanError(f"success {params['success']} is outside (0, 1]")
        x = self.clean_images(target, params, seed)
        inv = optimize.invert_triggers(target, x, classes, int(params["steps"]), float(params["lr"]),
                                       float(params["success"]), seed,
                                       patience=int(params["patience"]))
        self._last_inversion = inv
        return inv.norms, {}

    def model_score(self, target: ClassifierTarget, classes: list[int], params: dict[str, Any],
                    seed: int) -> float:
        # Not through per_class: a reference model must not replace the tested model's figures.
        from provscan_backdoor import optimize

        x = self.clean_images(target, params, seed)
        inv = optimize.invert_triggers(target, x, classes, int(params["steps"]), float(params["lr"]),
                                       float(params["success"]), seed,
                                       patience=int(params["patience"]))
        return self.score(inv.norms)[0]


def _check_positive(params: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if int(params[name]) < 1:
            raise ProvscanError(f"{name} must be at least 1, got {params[name]}")


DETECTORS: tuple[type[_BackdoorDetector], ...] = (MaxMargin, TriggerInversion)
