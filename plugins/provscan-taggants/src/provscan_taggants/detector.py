"""The ``taggants`` detector: was this model trained on the protected data?

Queries the model on the secret keys (optionally a few shifted copies of each), then runs the
exact top-k binomial test and, when the target returns scores for every class, the exact rank-sum
test (see :mod:`provscan_taggants.verification`). ``primary`` names the claim a policy judges;
``auto`` means the rank test when scores are available, the top-k test otherwise (a choice made
from the target's capabilities, never from the results).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provscan import Bound, Claim, Decision, Detector, Evidence, Param, ProvscanError
from provscan.stats import clopper_pearson
from provscan_taggants import __version__
from provscan_taggants.secret import Secret, read_secret
from provscan_taggants.verification import rank_test, topk_hits_from_scores, topk_test

if TYPE_CHECKING:
    import numpy as np

NULL = ("the model's answers on the secret keys are independent of the secret key labels "
        "(labels drawn i.i.d. uniformly over the classes), as for any model not trained on the "
        "protected data")
SHIFTS = [(0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1)]


def secret_file(raw: str) -> str:
    """Parameter type: a path to a readable, intact taggants secret (checked before the scan)."""
    read_secret(raw)
    return str(raw)


class TaggantsDetector(Detector):
    id = "taggants"
    version = __version__
    description = ("Dataset-ownership test: exact p-value that the model was trained on data "
                   "protected by `provscan inject taggants` (needs the secret file).")
    applies_to = ("classifier",)
    params = (
        Param("secret", secret_file, None, "path to the taggants secret JSON (required)",
              path=True),
        Param("k", int, 1, "top-k for the binomial test", ge=1),
        Param("augment", int, 4, "shifted copies of each key to average over (0-8)", ge=0, le=8),
        Param("primary", str, "auto", "claim the policy judges: auto (rank when scores are "
              "available), rank or topk", ("auto", "rank", "topk")),
        Param("alpha", float, 0.001, "significance level of the claims", gt=0, lt=1),
    )

    @classmethod
    def input_hints(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The secret keys have the protected images' shape and class count."""
        if not params.get("secret"):
            return {}
        secret = read_secret(params["secret"])
        return {"input_shape": secret.input_shape, "num_classes": secret.num_classes}

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        import numpy as np

        if not params.get("secret"):
            raise ProvscanError("taggants needs --param taggants.secret=SECRET")
        secret = read_secret(params["secret"])
        check_compatible(secret, target)
        k, alpha = int(params["k"]), float(params["alpha"])
        if not 1 <= k < secret.num_classes:
            raise ProvscanError(f"taggants.k must lie in 1..{secret.num_classes - 1}")
        queries = key_queries(secret.keys, int(params["augment"]))
        scores = _scores(target, queries, len(secret.keys), secret.num_classes)
        claims: list[Claim] = []
        details: dict[str, Any] = {"keys": len(secret.labels), "queries": int(len(queries)),
                                   "classes": secret.num_classes, "mode": secret.mode}
        if scores is not None:
            hits = topk_hits_from_scores(scores, secret.labels, k, rng)
        else:
            hits = _topk_only_hits(target, queries, secret, k, rng)
        top = topk_test(hits, k, secret.num_classes)
        lo, hi = clopper_pearson(top.statistic, top.n, 0.95)
        claims.append(Claim(
            name="top-k", null_hypothesis=NULL,
            test=f"exact binomial: hits ~ Binomial(K={top.n}, {k}/{secret.num_classes})",
            statistic=float(top.statistic), p_value=top.p_value, alpha=alpha, n=top.n,
            bound=Bound("Clopper-Pearson hit rate", 0.95, lo, hi),
            counts={"hits": top.statistic, "keys": top.n, "k": k,
                    "expected_hits": top.n * k / secret.num_classes},
            summary=f"{top.statistic}/{top.n} key labels in the top-{k} "
                    f"(chance {top.n * k / secret.num_classes:.1f}); p={top.p_value:.3g}"))
        if scores is not None:
            rk = rank_test(scores, secret.labels, rng)
            top_s = rk.n * (secret.num_classes - 1)
            claims.append(Claim(
                name="rank", null_hypothesis=NULL,
                test=f"exact rank-sum: sum of K={rk.n} i.i.d. uniform ranks on 0..{secret.num_classes - 1}",
                statistic=float(rk.statistic), p_value=rk.p_value, alpha=alpha, n=rk.n,
                counts={"rank_sum": rk.statistic, "max": top_s, "expected": top_s / 2,
                        "classes_beaten_per_key": rk.per_key},
                summary=f"key labels beat {rk.statistic} of {top_s} class comparisons "
                        f"(chance {top_s / 2:.0f}); p={rk.p_value:.3g}"))
            details["per_key"] = [
                {"label": int(lab), "top1": int(np.argmax(s)), "label_score": float(s[lab]),
                 "classes_beaten": int(b)}
                for lab, s, b in zip(secret.labels, scores, rk.per_key)]
        else:
            claims.append(Claim(
                name="rank", null_hypothesis=NULL, test="exact rank-sum", statistic=None,
                p_value=None, alpha=alpha, n=len(secret.labels), decision=Decision.INCONCLUSIVE,
                summary="the target returns only top-k labels, so the rank test cannot run"))
        primary = params.get("primary", "auto")
        if primary == "auto":
            primary = "rank" if scores is not None else "topk"
        figures = {}
        if scores is not None:
            figures["Classes beaten by each secret key's label (chance: dashed line)"] = _figure(
                rk.per_key, secret.num_classes, k)
        return Evidence(self.id, self.version, self.plugin, target.kind, claims,
                        primary="top-k" if primary == "topk" else "rank", params=params,
                        details=details, figures=figures)


def _figure(beats: list[int], num_classes: int, k: int) -> bytes:
    """SVG bar chart: per key, how many classes its label beats (top-k hits in red)."""
    from provscan import svg

    hits = [j for j, b in enumerate(beats) if num_classes - 1 - b < k]
    return svg.bar_chart(beats, [f"key {j}" for j in range(len(beats))], highlight=hits,
                     threshold=(num_classes - 1) / 2, threshold_label="chance",
                     ylabel="classes beaten", title="taggants: label rank per key")


def check_compatible(secret: Secret, target: Any) -> None:
    """The secret must fit the model: same number of classes and input shape."""
    n = getattr(target, "num_classes", None)
    if n is not None and int(n) != secret.num_classes:
        raise ProvscanError(f"taggants secret has {secret.num_classes} classes but the model "
                            f"has {n} (wrong secret for this model?)")
    shape = getattr(target, "input_shape", None)
    if shape and tuple(shape) != secret.input_shape:
        raise ProvscanError(f"taggants secret keys are {secret.input_shape} but the model takes "
                            f"{tuple(shape)} (wrong secret for this model?)")


def key_queries(keys: np.ndarray, augment: int) -> np.ndarray:
    """The keys, then ``augment`` one-pixel shifted copies of all of them (zero padding)."""
    import numpy as np

    if not 0 <= augment <= len(SHIFTS):
        raise ProvscanError(f"taggants.augment must lie in 0..{len(SHIFTS)}")
    out = [keys]
    h, w = keys.shape[-2:]
    for dy, dx in SHIFTS[:augment]:
        pad = np.pad(keys, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out.append(pad[..., 1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w])
    return np.concatenate(out).astype(np.float32)


def _scores(target: Any, queries: np.ndarray, n_keys: int, num_classes: int) -> np.ndarray | None:
    """Mean log-probabilities over the copies of each key, or None for top-k-only targets."""
    import numpy as np
    import torch

    logp = None
    try:
        logits = np.asarray(target.logits(queries), dtype=np.float64)
        logp = torch.as_tensor(logits).log_softmax(-1).numpy()
    except (NotImplementedError, AttributeError):
        try:
            idx, probs = target.predict_topk(queries, num_classes)
        except (NotImplementedError, ValueError, ProvscanError):
            return None
        idx, probs = np.asarray(idx), np.asarray(probs, dtype=np.float64)
        if idx.shape[1] < num_classes or not np.isfinite(probs).all():
            return None
        logp = np.full((len(queries), num_classes), -np.inf)
        np.put_along_axis(logp, idx, np.log(np.clip(probs, 1e-300, None)), axis=1)
    return logp.reshape(-1, n_keys, num_classes).mean(0)


def _topk_only_hits(target: Any, queries: np.ndarray, secret: Secret, k: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Top-k hits from label-only answers: votes over the copies of each key decide its top-k."""
    import numpy as np

    idx, _ = target.predict_topk(queries, k)
    idx = np.asarray(idx).reshape(-1, len(secret.labels), k)
    votes = np.zeros((len(secret.labels), secret.num_classes))
    for copy in idx:
        for j, row in enumerate(copy):
            votes[j, row] += 1
    return topk_hits_from_scores(votes, secret.labels, k, rng)
