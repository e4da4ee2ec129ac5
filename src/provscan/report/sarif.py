"""SARIF 2.1.0 report, shaped for GitHub code scanning (one run, one rule per detector).

- **Rules**: one per detector that ran (``id`` = detector id, ``name`` = its PascalCase form),
  with ``shortDescription``, ``fullDescription``, ``help`` (text and markdown),
  ``defaultConfiguration`` and ``properties.security-severity`` / ``tags`` taken from the detector
  family (:data:`FAMILIES`; an unknown third-party detector gets :data:`DEFAULT_FAMILY`). One more
  rule, :data:`INCONCLUSIVE_RULE`, carries every check that could not be carried out; it has no
  security severity, so an inconclusive check never shows as a critical alert.
- **Results**: a finding is kind ``fail``, level ``error`` (``warning`` when the policy only warns
  or did not judge the claim). ``file-safety`` findings are reported per offending file; every
  other claim is about the model as a whole and points at its largest file (the weights).
  Inconclusive claims, erroring detectors and required detectors that did not run are kind
  ``review``, level ``none`` (SARIF requires ``none`` for a non-``fail`` kind).
- **Locations**: the file's path relative to the working directory when it lies below it (what
  GitHub maps onto the repository), else an absolute ``file://`` URI; region ``startLine: 1`` (a
  checkpoint file has no meaningful lines; GitHub requires a start line).
- ``partialFingerprints["provscanClaim/v1"]`` = sha256 of ``detector NUL claim NUL subject`` (the
  file's relative path is appended to the claim for per-file results), stable across runs.
- ``automationDetails.id`` = ``provscan/<target>/``: GitHub's category, stable per target, so the
  alerts of one model never close those of another.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from provscan.report import Reporter

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS = "https://provscan.dev/docs/"


@dataclass(frozen=True)
class Family:
    """What a rule says about a family of detectors (matched by id prefix)."""

    severity: str  # GitHub security-severity, 0.0-10.0
    tags: tuple[str, ...]
    what: str  # fullDescription: what the check tests
    advice: str  # help: what a finding means and what to do
    doc: str  # docs page


FAMILIES: dict[str, Family] = {
    "file-safety": Family(
        "9.8", ("security", "external/cwe/cwe-502", "supply-chain"),
        "Static scan of every checkpoint file before anything is loaded: pickle opcodes and "
        "globals against a default-deny allowlist, torch zip archives, safetensors structure.",
        "A finding means that loading this file could execute code (deserialisation of untrusted "
        "data). Do not load it; rebuild the checkpoint as safetensors from a trusted source.",
        "safety.md"),
    "model-signing": Family(
        "8.1", ("security", "supply-chain", "integrity"),
        "Verifies the model-signing (OpenSSF) signature model.sig over the checkpoint's files "
        "with the trusted public key.",
        "A finding means the files do not match what the key holder signed (changed, added or "
        "removed files) or the signature is not by the trusted key. Do not release the model; "
        "find out what changed since it was signed.",
        "signing.md"),
    "backdoor": Family(
        "8.0", ("security", "ml-backdoor"),
        "Looks for a hidden trigger that sends inputs to one target class (trigger inversion or "
        "margin statistics, with a calibrated p-value).",
        "A finding means the model behaves like a backdoored classifier at the stated level. "
        "Quarantine it and inspect the inverted trigger and the training data.",
        "backdoor.md"),
    "spin": Family(
        "7.5", ("security", "ml-backdoor", "llm"),
        "Tests whether a trigger phrase shifts the sentiment or stance of generated text "
        "(a meta-backdoor, 'spin').",
        "A finding means the output's stance changes with the trigger at the stated level. "
        "Do not release the model; review the trigger candidates reported.",
        "spin.md"),
    "misalignment": Family(
        "7.0", ("security", "llm", "alignment"),
        "Probes a language model for emergent misalignment with scored question sets.",
        "A finding means the misaligned-answer rate exceeds the reference at the stated level. "
        "Review the example answers before release.",
        "misalignment.md"),
    "cot-monitor": Family(
        "7.0", ("security", "llm", "alignment"),
        "Monitors chains of thought for stated intentions that the final answers hide.",
        "A finding means reasoning traces disagree with answers more often than the reference "
        "at the stated level. Review the flagged traces.",
        "misalignment.md"),
    "trigger-elicitation": Family(
        "7.0", ("security", "llm", "ml-backdoor"),
        "Searches candidate triggers that change a language model's behaviour.",
        "A finding means a candidate trigger changes the behaviour at the stated level. Review "
        "the elicited trigger and the answers.",
        "misalignment.md"),
    "taggants": Family(
        "5.0", ("provenance", "data-licensing"),
        "Data taggants ownership test: were the protected (tagged) data used to train this "
        "model? Exact binomial test on the secret keys' top-k hits.",
        "A finding means the model was trained on the dataset owner's protected data at the "
        "stated level (a provenance question, not a code-execution risk).",
        "taggants.md"),
}
DEFAULT_FAMILY = Family(
    "5.0", ("security",), "",
    "A finding means the detector rejected its null hypothesis at the stated level; see the "
    "plugin's documentation.", "plugins.md")
INCONCLUSIVE_RULE = "provscan.inconclusive"


def family(detector: str) -> Family:
    """The family of a detector id: the longest known prefix ending at '.', '-' or the end."""
    for key in sorted(FAMILIES, key=len, reverse=True):
        if detector == key or re.match(re.escape(key) + r"[.\-/]", detector):
            return FAMILIES[key]
    return DEFAULT_FAMILY


def rule_name(rule_id: str) -> str:
    """PascalCase name for a rule id (never equal to the id, even ignoring case, as SARIF asks)."""
    name = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", rule_id) if p)
    name = name if name and name[0].isalpha() else f"Check{name}"
    return name if name.lower() != rule_id.lower() else f"{name}Check"


def _fingerprint(detector: str, claim: str, subject: str) -> str:
    return hashlib.sha256(f"{detector}\0{claim}\0{subject}".encode()).hexdigest()


def _uri(path: Path) -> str:
    """Relative POSIX URI below the working directory, else an absolute file:// URI."""
    absolute = Path(os.path.abspath(path))
    try:
        return quote(absolute.relative_to(Path.cwd()).as_posix())
    except ValueError:
        return absolute.as_uri()


def _rule(rule_id: str, ev: Any) -> dict[str, Any]:
    if rule_id == INCONCLUSIVE_RULE:
        text = ("A check could not be carried out (a detector did not apply, failed, was not run, "
                "or a file could not be understood). provscan never reports such a check as clean.")
        md = (text + "\n\nThe gate fails closed (exit code 3). Read the result's message for the "
              f"detector and the reason; see [policies]({DOCS}policy.md).")
        return {"id": rule_id, "name": rule_name(rule_id),
                "shortDescription": {"text": "A required check was inconclusive"},
                "fullDescription": {"text": text}, "help": {"text": text, "markdown": md},
                "defaultConfiguration": {"level": "note"},
                "properties": {"tags": ["provscan", "inconclusive"], "precision": "very-high"}}
    fam = family(rule_id)
    claim = ev.claim() if ev is not None else None
    what = fam.what or (f"provscan detector {rule_id}"
                        + (f" testing H0: {claim.null_hypothesis}" if claim is not None else "") + ".")
    version = f" ({ev.plugin} {ev.detector_version})" if ev is not None else ""
    help_text = f"{what} {fam.advice}"
    md = (f"**{rule_id}**{version}\n\n{what}\n\n{fam.advice}\n\nClaims are scoped: no finding means "
          f"no evidence at the stated level, not proof of absence. See [{fam.doc}]({DOCS}{fam.doc}).")
    props: dict[str, Any] = {"tags": list(fam.tags), "security-severity": fam.severity,
                             "precision": "high"}
    if ev is not None:
        props.update({"plugin": ev.plugin, "detectorVersion": ev.detector_version})
    return {"id": rule_id, "name": rule_name(rule_id),
            "shortDescription": {"text": f"provscan: {rule_id}"},
            "fullDescription": {"text": what}, "help": {"text": help_text, "markdown": md},
            "defaultConfiguration": {"level": "error"}, "properties": props}


def sarif_dict(result: Any) -> dict[str, Any]:
    from provscan import __version__
    from provscan.evidence import Decision, _jsonable

    scan = result.scan
    manifest = scan.manifest
    subject = manifest.name if manifest is not None else scan.location
    local = manifest is not None and Path(scan.location).exists()
    root = Path(scan.location)

    def file_uri(rel: str) -> str:
        if not local:
            return f"{scan.location.rstrip('/')}/{quote(rel)}" if rel else scan.location
        return _uri(root if root.is_file() else root / rel)

    main_file = max(manifest.files, key=lambda f: (f.size, f.path)).path if manifest else ""
    target_key = _uri(root) if local else scan.location

    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}

    def rule_index(rule_id: str, ev: Any = None) -> int:
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append(_rule(rule_id, ev))
        return index[rule_id]

    for ev in result.evidence:
        rule_index(ev.detector, ev)
    actions = {(j["detector"], j["claim"]): j for j in getattr(result.verdict, "judged", [])}
    results: list[dict[str, Any]] = []

    def add(detector: str, claim: str, finding: bool, level: str, text: str, props: dict[str, Any],
            rel: str | None = None) -> None:
        rule_id = detector if finding else INCONCLUSIVE_RULE
        uri = file_uri(main_file if rel is None else rel)
        key = claim if rel is None else f"{claim}:{rel}"
        results.append({
            "ruleId": rule_id, "ruleIndex": rule_index(rule_id),
            "kind": "fail" if finding else "review", "level": level if finding else "none",
            "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri},
                                                "region": {"startLine": 1}}}],
            "partialFingerprints": {"provscanClaim/v1": _fingerprint(detector, key, subject)},
            "properties": _jsonable({"detector": detector, **props})})

    for ev in result.evidence:
        if ev.error is not None:
            add(ev.detector, "(error)", False, "none", f"{ev.detector} failed: {ev.error}",
                {"decision": "error"})
            continue
        for c in ev.claims:
            judged = actions.get((ev.detector, c.name))
            decision = Decision(judged["decision"]) if judged else c.decision
            props = {"claim": c.name, "decision": decision.value if decision else "inconclusive",
                     "nullHypothesis": c.null_hypothesis, "test": c.test, "pValue": c.p_value,
                     "alpha": judged["alpha"] if judged else c.alpha, "n": c.n,
                     "statistic": c.statistic, "judged": judged is not None}
            level = "warning" if judged and judged.get("action") == "warn" or not judged else "error"
            files = ev.details.get("files") if ev.detector == "file-safety" else None
            if isinstance(files, list) and files and decision in (Decision.FINDING, Decision.INCONCLUSIVE):
                _file_results(add, ev.detector, c.name, files, level, props)
            elif decision == Decision.FINDING:
                p = "" if c.p_value is None else f" (p={c.p_value:.3g}, alpha={props['alpha']:g})"
                add(ev.detector, c.name, True, level,
                    f"{ev.detector}/{c.name}: rejected H0: {c.null_hypothesis}{p}. {c.summary}".strip(), props)
            elif decision in (Decision.INCONCLUSIVE, Decision.ERROR, None):
                add(ev.detector, c.name, False, "none",
                    f"{ev.detector}/{c.name}: inconclusive: {c.summary or 'could not be checked'}", props)
    ran = {ev.detector for ev in result.evidence}
    for did in scan.policy.required_detectors() if hasattr(scan.policy, "required_detectors") else []:
        if did not in ran:
            add(did, "(not run)", False, "none", f"{did}: required by the policy but did not run",
                {"decision": "inconclusive"})
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "provscan", "version": __version__, "semanticVersion": __version__,
                            "informationUri": DOCS, "rules": rules}},
        "automationDetails": {"id": f"provscan/{target_key}/"},
        "invocations": [{"executionSuccessful": result.verdict.status != "inconclusive",
                         "exitCode": result.exit_code,
                         "startTimeUtc": _utc(scan.started_at), "endTimeUtc": _utc(result.finished_at)}],
        "results": results,
        "properties": {"verdict": result.verdict.status, "policy": scan.policy.name,
                       "reasons": list(result.verdict.reasons), "subject": subject},
    }
    if manifest is not None:
        run["artifacts"] = [{"location": {"uri": file_uri(f.path)}, "length": f.size,
                             "hashes": {"sha-256": f.sha256}} for f in manifest.files]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def _file_results(add: Any, detector: str, claim: str, files: list[dict[str, Any]], level: str,
                  props: dict[str, Any]) -> None:
    """One result per file the safety scan did not pass (unsafe: finding; else inconclusive)."""
    for f in files:
        verdict = f.get("verdict")
        if verdict == "safe":
            continue
        why = "; ".join(f.get("findings") or []) or "n/a"
        file_props = dict(props, file=f.get("path"), format=f.get("format"), fileVerdict=verdict)
        if verdict == "unsafe":
            add(detector, claim, True, level,
                f"{f.get('path')}: unsafe to load ({f.get('format')}): {why}", file_props, f.get("path"))
        else:
            add(detector, claim, False, "none",
                f"{f.get('path')}: could not be checked ({f.get('format')}): {why}", file_props,
                f.get("path"))


def _utc(stamp: str) -> str:
    """ISO timestamps as SARIF wants them (``...Z``)."""
    return stamp.replace("+00:00", "Z")


class SarifReporter(Reporter):
    name = "sarif"
    suffix = ".sarif"

    def render(self, result: Any) -> bytes:
        return (json.dumps(sarif_dict(result), indent=2, sort_keys=True, default=str) + "\n").encode()
