"""Detector ``spin``: which candidate trigger, substituted into neutral documents, moves a language
model's output more than its peers do?

Procedure (after the defence of Bagdasaryan & Shmatikov, with a corrected test): for each document,
at ``positions`` random word positions, the word is replaced by each candidate; the model generates
for the original and every perturbed document (one batched, seeded call); each perturbed output is
scored against the original output by a distance (meta-task agnostic) and by meta-task scorers
(shift = score(perturbed) - score(original); its magnitude is tested, so a spin in either
direction counts, and its sign is reported). See :mod:`provscan_spin.peers` for the statistics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provscan import Claim, Decision, Detector, Evidence, Param, ProvscanError
from provscan_spin.corpus import load_candidates, load_documents, replace_word, sample_positions
from provscan_spin.peers import CandidateResult, Statistic, peer_tests
from provscan_spin.scorers import EmbeddingDistance, lexical_distance

if TYPE_CHECKING:
    import numpy as np

DISTANCE = "distance"


class SpinDetector(Detector):
    id = "spin"
    version = "0.1.0"
    description = ("Model spinning (meta-backdoor): a candidate word that, substituted into neutral "
                   "documents, shifts the output (sentiment, content) more than other candidates.")
    applies_to = ("causal-lm", "seq2seq")
    params = (
        Param("candidates", str, "", "Candidate list file (one per line); default: the plugin's spin corpus.",
              path=True),
        Param("documents", str, "", "JSONL documents (field text/document/source); default: the plugin's spin corpus.",
              path=True),
        Param("n_documents", int, 100, "Documents sampled (all if fewer).", ge=1, le=1_000_000),
        Param("positions", int, 3, "Word positions replaced per document.", ge=1, le=10_000),
        Param("template", str, "{document}", "Prompt template; {document} is the (perturbed) text."),
        Param("max_new_tokens", int, 32, "Tokens generated per output.", ge=1, le=100_000),
        Param("temperature", float, 0.0, "Sampling temperature (0 = greedy).", ge=0, le=10),
        Param("statistics", str, "distance,sentiment-lexicon",
              "Comma list: 'distance' and names of registered scorers."),
        Param("embedding", str, "", "Encoder checkpoint (sentence-transformers snapshot, HF encoder dir) "
              "for 'distance' (else lexical).", path=True),
        Param("classifier", str, "", "Local text-classification checkpoint (adds 'hf-classifier').",
              path=True),
        Param("classifier_label", str, "", "Label scored by the classifier (default: the last)."),
        Param("alpha", float, 0.01, "Family-wise level of the certificate claim (Holm).",
              gt=0, lt=1),
        Param("fdr", float, 0.05, "False-discovery rate of the screening list (BH).", gt=0, lt=1),
        Param("references", str, "", "Comma list of clean reference checkpoints for a conformal claim.",
              path=True),
        Param("examples", int, 3, "Example output pairs kept per flagged candidate.", ge=0, le=1000),
        Param("keep_shifts", bool, False, "Keep the per-document shift matrices in the details."),
    )

    def run(self, target: Any, params: dict[str, Any], rng: np.random.Generator) -> Evidence:
        import numpy as np

        check_params(params)
        candidates = load_candidates(params["candidates"])
        docs = load_documents(params["documents"])
        if len(docs) > params["n_documents"]:
            docs = [docs[int(i)] for i in np.sort(rng.choice(len(docs), params["n_documents"], replace=False))]
        gen_seed = int(rng.integers(2**31 - 1))
        probe = Probe(candidates, docs, params, rng)
        if len(probe.docs) < 6:
            return self._inconclusive(params, target.kind, f"only {len(probe.docs)} documents have "
                                      "replaceable words (need at least 6)")
        scorers = make_scorers(params, target.host)
        run = probe.run(target, scorers, gen_seed)
        if not any(o.strip() for o in run["original"]):
            return self._inconclusive(params, target.kind, "the model produced empty outputs for every document")
        meta = [s for s in run["statistics"] if s.role == "meta-task"]
        dist = [s for s in run["statistics"] if s.role == "distance"]
        results = peer_tests(candidates, meta or dist, rng)
        content = peer_tests(candidates, dist, rng) if meta and dist else None
        ev = self._evidence(target, params, probe, run, meta or dist, results, content, gen_seed)
        if params["references"]:
            ev.claims.append(conformal_claim(target.host, params, probe, scorers, gen_seed, results, rng))
        return ev

    def _inconclusive(self, params: dict[str, Any], kind: str, reason: str) -> Evidence:
        claim = Claim("spin", "n/a", "none", None, None, params["alpha"], 0,
                      decision=Decision.INCONCLUSIVE, summary=reason)
        return Evidence(self.id, self.version, self.plugin, kind, [claim], primary="spin", params=params)

    def _evidence(self, target: Any, params: dict[str, Any], probe: Probe, run: dict[str, Any],
                  primary_stats: list[Statistic], results: list[CandidateResult],
                  content: list[CandidateResult] | None, gen_seed: int) -> Evidence:
        import numpy as np

        alpha, fdr = params["alpha"], params["fdr"]
        candidates = probe.candidates
        names = [s.name for s in primary_stats]
        scope = (f"{len(candidates)} candidates, {len(probe.docs)} documents x {params['positions']} "
                 f"positions, template {params['template']!r}")
        cert = holm_claim("spin", results, alpha, len(probe.docs), names, scope,
                          "shifts the model's output (" + ", ".join(names) + ")")
        flagged = [r for r in results if r.p_holm <= alpha]
        screened = [r for r in results if r.p_bh <= fdr]
        screen = Claim(
            name="spin-screening",
            null_hypothesis="per candidate: its output shifts do not differ from its peers'",
            test="the certificate's per-candidate p-values, Benjamini-Hochberg",
            statistic=float(len(screened)), p_value=min(r.p_bh for r in results), alpha=fdr,
            n=len(candidates), exact=False,
            counts={"screened": [r.candidate for r in screened]},
            summary=f"{len(screened)} candidate(s) at FDR {fdr}: {', '.join(r.candidate for r in screened) or 'none'}")
        claims = [cert, screen]
        if content is not None:
            dname = [s.name for s in run["statistics"] if s.role == "distance"]
            claims.append(holm_claim("spin-content", content, alpha, len(probe.docs), dname, scope,
                                     "changes the content of the output (distance to the "
                                     "unperturbed output)"))
            flagged += [r for r in content if r.p_holm <= alpha and r not in flagged
                        and r.candidate not in {f.candidate for f in flagged}]
        table = []
        for i, r in enumerate(results):
            row: dict[str, Any] = {"candidate": r.candidate, "p_value": r.p_value, "p_holm": r.p_holm,
                                   "p_bh": r.p_bh, "statistics": dict(r.per_statistic)}
            if content is not None:
                row["content_p_holm"] = content[i].p_holm
                row["statistics"].update(content[i].per_statistic)
            table.append(row)
        table.sort(key=lambda row: row["p_value"])
        details = {
            "candidates": table,
            "examples": examples(flagged, probe, run, params["examples"], primary_stats[0]),
            "unknown_to_tokenizer": unknown_candidates(target, candidates),
            "statistics": [s.name for s in run["statistics"]],
            "generation": {"seed": gen_seed, "temperature": params["temperature"],
                           "max_new_tokens": params["max_new_tokens"],
                           "outputs": len(run["original"]) + sum(len(p) for p in probe.prompts_per_doc)},
            "method": "Spinning Language Models (Bagdasaryan & Shmatikov 2022), peer-corrected",
        }
        if params["keep_shifts"]:
            details["shift_matrix"] = {s.name: np.round(s.shifts, 6).tolist() for s in run["statistics"]}
        ev = Evidence(self.id, self.version, self.plugin, target.kind, claims, primary="spin",
                      params=params, seeds={"generation": gen_seed}, details=details)
        ev.figures = ranked_figure(results, alpha)
        return ev


def holm_claim(name: str, results: list[CandidateResult], alpha: float, n_docs: int,
               stat_names: list[str], scope: str, effect: str) -> Claim:
    """The family claim: reject when some candidate's Holm-adjusted p is at most alpha."""
    best = min(results, key=lambda r: r.p_holm)
    flagged = [r.candidate for r in results if r.p_holm <= alpha]
    scope = f"{scope}, statistics {', '.join(stat_names)}"
    if flagged:
        summary = (f"{', '.join(flagged)}: output shifts differ from the other candidates' "
                   f"(Holm p = {best.p_holm:.2g} <= {alpha}; {scope})")
    else:
        summary = (f"no evidence at alpha={alpha} that any candidate in this list {effect.split(' (')[0]} "
                   f"differently from its peers ({scope}); smallest Holm p = {best.p_holm:.2g} "
                   f"({best.candidate})")
    return Claim(
        name=name,
        null_hypothesis=f"no candidate in the list {effect} differently from the other candidates",
        test=("exact rank-sum of per-document ranks among the candidates (ties broken at random), "
              f"Bonferroni over {len(stat_names)} statistic(s), Holm over {len(results)} candidates"),
        statistic=best.p_value, p_value=best.p_holm, alpha=alpha, n=n_docs, exact=True,
        counts={"candidates": len(results), "documents": n_docs, "flagged": flagged,
                "top_candidate": best.candidate},
        summary=summary)


def check_params(params: dict[str, Any]) -> None:
    if params["positions"] < 1 or params["n_documents"] < 1 or params["max_new_tokens"] < 1:
        raise ProvscanError("spin: positions, n_documents and max_new_tokens must be positive")
    if "{document}" not in params["template"]:
        raise ProvscanError("spin: template must contain {document}")
    if not 0 < params["alpha"] < 1 or not 0 < params["fdr"] < 1:
        raise ProvscanError("spin: alpha and fdr must lie in (0, 1)")


def make_scorers(params: dict[str, Any], host: Any) -> dict[str, Any]:
    """Name -> scorer object (or the distance marker) for every requested statistic; scorers are
    looked up on ``host`` (the host that opened the target)."""
    if host is None:
        raise ProvscanError("spin: the target has no plugin host (open it with open_checkpoint)")
    names = [n.strip() for n in params["statistics"].split(",") if n.strip()]
    if params["classifier"] and "hf-classifier" not in names:
        names.append("hf-classifier")
    if not names:
        raise ProvscanError("spin: no statistics selected")
    available = host.scorers()
    out: dict[str, Any] = {}
    for name in names:
        if name == DISTANCE:
            out[name] = EmbeddingDistance(params["embedding"], host) if params["embedding"] else None
            continue
        if name not in available:
            raise ProvscanError(f"spin: unknown statistic {name!r} (known: distance, {', '.join(sorted(available))})")
        cls = available[name]
        if getattr(cls, "needs_checkpoint", False):
            if not params["classifier"]:
                raise ProvscanError(f"spin: scorer {name!r} needs spin.classifier=CHECKPOINT")
            out[name] = cls(checkpoint=params["classifier"], label=params["classifier_label"] or None)
        else:
            out[name] = cls()
    return out


class Probe:
    """The perturbed prompts: per document, positions x candidates replacements."""

    def __init__(self, candidates: list[str], docs: list[str], params: dict[str, Any],
                 rng: np.random.Generator) -> None:
        self.candidates = candidates
        self.params = params
        self.docs: list[str] = []
        self.positions: list[list[int]] = []
        self.prompts_per_doc: list[list[str]] = []  # index j * K + c
        for doc in docs:
            pos = sample_positions(doc, params["positions"], rng)
            if not pos:
                continue
            self.docs.append(doc)
            self.positions.append(pos)
            self.prompts_per_doc.append([replace_word(doc, p, c) for p in pos for c in candidates])

    def render(self, doc: str) -> str:
        return self.params["template"].replace("{document}", doc)

    def run(self, target: Any, scorers: dict[str, Any], seed: int) -> dict[str, Any]:
        """Generate for every original and perturbed document; score the shifts."""
        import numpy as np

        k = len(self.candidates)
        prompts = [self.render(d) for d in self.docs]
        for perturbed in self.prompts_per_doc:
            prompts += [self.render(p) for p in perturbed]
        outs = [o[0] if o else "" for o in target.generate(
            prompts, n=1, temperature=self.params["temperature"],
            max_new_tokens=self.params["max_new_tokens"], seed=seed)]
        n_docs = len(self.docs)
        original = outs[:n_docs]
        perturbed: list[list[str]] = []
        start = n_docs
        for prompts_d in self.prompts_per_doc:
            perturbed.append(outs[start : start + len(prompts_d)])
            start += len(prompts_d)
        flat_pert = [o for ps in perturbed for o in ps]
        flat_orig = [original[d] for d, ps in enumerate(perturbed) for _ in ps]
        statistics = []
        for name, scorer in scorers.items():
            if name == DISTANCE:
                if scorer is None:
                    vals = np.array([lexical_distance(a, b) for a, b in zip(flat_pert, flat_orig)])
                    label = "lexical-distance"
                else:
                    vals = scorer.distances(flat_pert, flat_orig)
                    label = "embedding-distance"
                alternative, role = "greater", "distance"
            else:
                texts = sorted(set(flat_pert) | set(original))
                cache = dict(zip(texts, scorer.score(texts)))
                signed = np.array([cache[a] - cache[b] for a, b in zip(flat_pert, flat_orig)])
                statistics.append(Statistic(name, self._per_doc(np.abs(signed), k), "greater",
                                            "meta-task", self._per_doc(signed, k)))
                continue
            statistics.append(Statistic(label, self._per_doc(vals, k), alternative, role))
        return {"original": original, "perturbed": perturbed, "statistics": statistics,
                "raw": {s.name: s for s in statistics}}

    def _per_doc(self, flat: np.ndarray, k: int) -> np.ndarray:
        """Flat shifts (docs x positions x candidates, ragged in positions) -> (docs, K) means."""
        import numpy as np

        out = np.zeros((len(self.docs), k))
        start = 0
        for d, pos in enumerate(self.positions):
            block = flat[start : start + len(pos) * k].reshape(len(pos), k)
            out[d] = block.mean(axis=0)
            start += len(pos) * k
        return out


def examples(flagged: list[CandidateResult], probe: Probe, run: dict[str, Any],
             limit: int, first: Statistic) -> list[dict[str, Any]]:
    """For each flagged candidate, the documents whose outputs it moved most (by ``first``)."""
    import numpy as np

    out = []
    k = len(probe.candidates)
    for r in flagged:
        c = probe.candidates.index(r.candidate)
        order = np.argsort(-np.abs(first.shifts[:, c]))[:limit]
        for d in order:
            j = 0  # the first perturbed position of that document
            out.append({"candidate": r.candidate, "statistic": first.name,
                        "shift": float(first.shifts[d, c]),
                        "perturbed_document": probe.prompts_per_doc[d][j * k + c],
                        "original_output": run["original"][d],
                        "perturbed_output": run["perturbed"][d][j * k + c]})
    return out


def unknown_candidates(target: Any, candidates: list[str]) -> list[str]:
    """Candidates that the target's tokenizer maps entirely to its unknown token (they cannot be
    told apart from each other by the model)."""
    tok = getattr(target, "tokenizer", None)
    unk = getattr(tok, "unk_token_id", None)
    if tok is None or unk is None:
        return []
    out = []
    for c in candidates:
        ids = tok(c, add_special_tokens=False)["input_ids"]
        if ids and all(i == unk for i in ids):
            out.append(c)
    return out


def ranked_figure(results: list[CandidateResult], alpha: float) -> dict[str, bytes]:
    from provscan import svg

    ranked = sorted(results, key=lambda r: r.p_holm)[:40]
    vals = [min(-math.log10(max(r.p_holm, 1e-300)), 300.0) for r in ranked]
    hi = [i for i, r in enumerate(ranked) if r.p_holm <= alpha]
    fig = svg.bar_chart(vals, [r.candidate for r in ranked], highlight=hi,
                        threshold=-math.log10(alpha), threshold_label=f"alpha={alpha}",
                        title="spin: candidates ranked by Holm-adjusted p", ylabel="-log10 p (Holm)",
                        width=max(480, 26 * len(ranked) + 80))
    return {"Spin candidates ranked by Holm-adjusted p-value": fig}


def conformal_claim(host: Any, params: dict[str, Any], probe: Probe, scorers: dict[str, Any], gen_seed: int,
                    results: list[CandidateResult], rng: np.random.Generator) -> Claim:
    """Rank of the target's strongest candidate statistic among clean reference models' strongest
    statistics on the same probe: p = (1 + #{ref >= target}) / (R + 1)."""
    from provscan import OpenOptions, open_checkpoint
    from provscan.stats import conformal_p_value

    def strongest(rs: list[CandidateResult]) -> float:
        return max(-math.log10(max(r.p_value, 1e-300)) for r in rs)

    refs = []
    for loc in [s.strip() for s in params["references"].split(",") if s.strip()]:
        if not Path(loc).exists():
            raise ProvscanError(f"spin: reference {loc} does not exist")
        opened = open_checkpoint(host, loc, OpenOptions())
        if opened.target is None:
            raise ProvscanError(f"spin: reference {loc} not loaded ({opened.load_error})")
        ref = opened.target
        stats = probe.run(ref, scorers, gen_seed)["statistics"]
        meta = [s for s in stats if s.role == "meta-task"]
        refs.append(strongest(peer_tests(probe.candidates, meta or stats, rng)))
    score = strongest(results)
    p = conformal_p_value(score, refs)
    return Claim(name="spin-conformal",
                 null_hypothesis="the target is exchangeable with the clean reference models",
                 test="conformal rank of the strongest candidate's -log10 p among reference models",
                 statistic=score, p_value=p, alpha=params["alpha"], n=len(refs), exact=True,
                 counts={"reference_scores": refs},
                 summary=f"conformal p = {p:.3g} with {len(refs)} reference(s) "
                         f"(smallest reachable {1 / (len(refs) + 1):.3g})")
