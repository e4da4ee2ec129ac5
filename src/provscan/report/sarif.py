"""SARIF 2.1.0 report: one run, rules = detectors, results = failed and inconclusive claims.

A finding is a result of kind ``fail`` (level ``error``, or ``warning`` when the policy only warns);
an inconclusive claim, an erroring detector or a policy reason without a claim (a required detector
that did not run) is a result of kind ``review`` (level ``none``, as SARIF requires for a non-fail
kind). Each result carries ``partialFingerprints["provscanClaim/v1"]`` = sha256 of
``detector NUL claim NUL subject name``, stable across runs of the same check on the same model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from provscan.report import Reporter

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _fingerprint(detector: str, claim: str, subject: str) -> str:
    return hashlib.sha256(f"{detector}\0{claim}\0{subject}".encode()).hexdigest()


def sarif_dict(result: Any) -> dict[str, Any]:
    from provscan import __version__
    from provscan.evidence import Decision, _jsonable

    scan = result.scan
    subject = scan.manifest.name if scan.manifest is not None else scan.location
    artifact_uri = scan.location
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for ev in result.evidence:
        if ev.detector in index:
            continue
        index[ev.detector] = len(rules)
        rules.append({"id": ev.detector, "name": ev.detector,
                      "shortDescription": {"text": f"provscan detector {ev.detector}"},
                      "properties": {"plugin": ev.plugin, "detectorVersion": ev.detector_version}})
    actions = {(j["detector"], j["claim"]): j for j in getattr(result.verdict, "judged", [])}
    location = [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri}}}]
    results: list[dict[str, Any]] = []

    def add(detector: str, claim: str, kind: str, level: str, text: str, props: dict[str, Any]) -> None:
        r: dict[str, Any] = {"ruleId": detector, "kind": kind, "level": level, "message": {"text": text},
                             "locations": location,
                             "partialFingerprints": {"provscanClaim/v1": _fingerprint(detector, claim, subject)},
                             "properties": _jsonable(props)}
        if detector in index:
            r["ruleIndex"] = index[detector]
        results.append(r)

    for ev in result.evidence:
        if ev.error is not None:
            add(ev.detector, "(error)", "review", "none", f"{ev.detector} failed: {ev.error}",
                {"decision": "error"})
            continue
        for c in ev.claims:
            judged = actions.get((ev.detector, c.name))
            decision = Decision(judged["decision"]) if judged else c.decision
            props = {"claim": c.name, "decision": decision.value if decision else "inconclusive",
                     "nullHypothesis": c.null_hypothesis, "test": c.test, "pValue": c.p_value,
                     "alpha": judged["alpha"] if judged else c.alpha, "n": c.n,
                     "statistic": c.statistic, "judged": judged is not None}
            if decision == Decision.FINDING:
                level = "warning" if judged and judged.get("action") == "warn" or not judged else "error"
                p = "" if c.p_value is None else f" (p={c.p_value:.3g}, alpha={props['alpha']:g})"
                add(ev.detector, c.name, "fail", level,
                    f"{ev.detector}/{c.name}: rejected H0: {c.null_hypothesis}{p}. {c.summary}".strip(), props)
            elif decision in (Decision.INCONCLUSIVE, Decision.ERROR, None):
                add(ev.detector, c.name, "review", "none",
                    f"{ev.detector}/{c.name}: inconclusive: {c.summary or 'could not be checked'}", props)
    ran = {ev.detector for ev in result.evidence}
    for did in scan.policy.required_detectors() if hasattr(scan.policy, "required_detectors") else []:
        if did not in ran:
            add(did, "(not run)", "review", "none", f"{did}: required by the policy but did not run",
                {"decision": "inconclusive"})
    artifacts = []
    if scan.manifest is not None:
        artifacts = [{"location": {"uri": f.path, "uriBaseId": "CHECKPOINT"}, "length": f.size,
                      "hashes": {"sha-256": f.sha256}} for f in scan.manifest.files]
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "provscan", "version": __version__, "semanticVersion": __version__,
                            "informationUri": "https://provscan.dev", "rules": rules}},
        "invocations": [{"executionSuccessful": result.verdict.status != "inconclusive",
                         "exitCode": result.exit_code,
                         "startTimeUtc": _utc(scan.started_at), "endTimeUtc": _utc(result.finished_at)}],
        "results": results,
        "properties": {"verdict": result.verdict.status, "policy": scan.policy.name,
                       "reasons": list(result.verdict.reasons)},
    }
    if artifacts:
        run["artifacts"] = artifacts
        run["originalUriBaseIds"] = {"CHECKPOINT": {"description": {"text": f"checkpoint {subject}"}}}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _utc(stamp: str) -> str:
    """ISO timestamps as SARIF wants them (``...Z``)."""
    return stamp.replace("+00:00", "Z")


class SarifReporter(Reporter):
    name = "sarif"
    suffix = ".sarif"

    def render(self, result: Any) -> bytes:
        return (json.dumps(sarif_dict(result), indent=2, sort_keys=True, default=str) + "\n").encode()
