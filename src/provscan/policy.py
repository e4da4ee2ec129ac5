"""Policy: a TOML file that turns evidence into a verdict and an exit code.

See docs/policy.md for the format. In short::

    name = "release-gate"
    inconclusive = "fail"      # fail (exit 3, the default: fail closed) | warn
    unlisted = "fail"          # a finding from a detector not listed below: fail | warn

    [detectors.file-safety]
    required = true            # added to every scan under this policy; must produce a result
    action = "fail"            # a finding fails the gate (exit 1) | "warn": reported only

    [detectors.taggants]
    claim = "ownership"        # which claim is judged (default: the detector's primary claim)
    alpha = 0.001              # re-judge that claim at this level (default: the claim's alpha)
    # or several claims: claims = { ownership = 0.001, top1 = 0.01 }

    [plugins]                  # if present, only these distributions may provide detectors
    provscan-backdoor = ">=0.1,<1"

    [signers]                  # `provscan cert verify` requires these key ids to have signed
    required = ["<key id as `provscan keys list` prints it>"]

``--policy builtin:NAME`` (or ``builtin:PACKAGE/NAME``) loads ``policies/NAME.toml`` shipped inside
provscan or inside a registered plugin's top-level package.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from provscan.errors import EXIT_INCONCLUSIVE, EXIT_OK, EXIT_POLICY_FAILED, ProvscanError
from provscan.evidence import Decision, Evidence

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ACTIONS = ("fail", "warn")
_TOP_KEYS = {"name", "description", "version", "inconclusive", "unlisted", "detectors", "plugins",
             "signers", "ignore"}
_RULE_KEYS = {"required", "action", "claim", "alpha", "claims"}
_KEYID = re.compile(r"^[0-9a-f]{64}$")


class PolicyError(ProvscanError):
    """A policy file is missing, malformed or uses unknown keys."""


@dataclass
class DetectorRule:
    """How the policy judges one detector. ``claims`` maps a claim name to an alpha override
    (``None``: the claim's own alpha); empty means the primary claim at its own alpha."""

    required: bool = True
    action: str = "fail"
    claims: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Policy:
    name: str = "default"
    rules: dict[str, Any] = field(default_factory=dict)  # the parsed TOML
    source: str = ""  # the policy file's text, for its digest
    origin: str = "default"  # "default", a file path or builtin:NAME
    description: str = ""
    detectors: dict[str, DetectorRule] = field(default_factory=dict)
    inconclusive: str = "fail"
    unlisted: str = "fail"
    plugins: dict[str, str] = field(default_factory=dict)
    signers: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)  # file globs left out of the scan (--ignore)

    @property
    def public_origin(self) -> str:
        """``origin`` as reports and certificates show it: a policy file by its name only."""
        if self.origin == "default" or self.origin.startswith("builtin:"):
            return self.origin
        return Path(self.origin).name or self.origin

    def effective(self) -> dict[str, Any]:
        """The policy as applied, defaults filled in: what its digest is taken over."""
        return {
            "version": 1, "name": self.name, "inconclusive": self.inconclusive,
            "unlisted": self.unlisted,
            "detectors": {d: {"required": r.required, "action": r.action, "claims": dict(r.claims)}
                          for d, r in sorted(self.detectors.items())},
            "plugins": dict(sorted(self.plugins.items())), "signers": sorted(self.signers),
        }

    @property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of :meth:`effective` (sorted keys, no whitespace): two
        policies that judge alike have the same digest, and the default policy has one too."""
        text = json.dumps(self.effective(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    @property
    def source_sha256(self) -> str | None:
        """SHA-256 of the policy file's text (None for the built-in default, which has no file)."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest() if self.source else None

    def required_detectors(self) -> list[str]:
        return [d for d, r in self.detectors.items() if r.required]

    def open_options(self, options: Any) -> Any:
        """``options`` (an :class:`~provscan.targets.OpenOptions`) with this policy's ``ignore``
        globs first, then the command line's."""
        if not self.ignore:
            return options
        import dataclasses

        return dataclasses.replace(options, ignore=tuple(dict.fromkeys([*self.ignore, *options.ignore])))


@dataclass
class PolicyVerdict:
    status: str  # pass | fail | inconclusive
    reasons: list[str]
    warnings: list[str] = field(default_factory=list)
    judged: list[dict[str, Any]] = field(default_factory=list)  # detector, claim, alpha, decision

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_POLICY_FAILED, "inconclusive": EXIT_INCONCLUSIVE}[self.status]


# ---------------------------------------------------------------- parsing


def parse_policy(text: str, origin: str = "<string>") -> Policy:
    """Parse and strictly validate a TOML policy; any problem is one :class:`PolicyError` line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy {origin}: not valid TOML ({exc})") from None

    def fail(msg: str) -> PolicyError:
        return PolicyError(f"policy {origin}: {msg}")

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")
    pol = Policy(rules=data, source=text, origin=origin)
    pol.name = _typed(data, "name", str, None, fail) or Path(origin).stem or "policy"
    pol.description = _typed(data, "description", str, "", fail)
    version = data.get("version", 1)
    if version != 1:
        raise fail(f"unsupported version {version!r} (this provscan reads version 1)")
    pol.inconclusive = _choice(data, "inconclusive", ACTIONS, "fail", fail)
    pol.unlisted = _choice(data, "unlisted", ACTIONS, "fail", fail)
    dets = data.get("detectors", {})
    if not isinstance(dets, dict):
        raise fail("detectors must be a table")
    for did, raw in dets.items():
        pol.detectors[did] = _rule(did, raw, fail)
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        raise fail("plugins must be a table of distribution = \"version range\"")
    for dist, spec in plugins.items():
        if not isinstance(spec, str):
            raise fail(f"plugins.{dist}: version range must be a string such as \">=0.1,<1\"")
        try:
            version_in_range("0", spec)
        except ValueError as exc:
            raise fail(f"plugins.{dist}: {exc}") from None
        pol.plugins[_norm(dist)] = spec
    signers = data.get("signers", {})
    if not isinstance(signers, dict) or set(signers) - {"required"}:
        raise fail("signers must be a table with one key, required = [key ids]")
    req = signers.get("required", [])
    if not isinstance(req, list) or not all(isinstance(k, str) and _KEYID.match(k) for k in req):
        raise fail("signers.required must list key ids (64 lowercase hex digits; see `provscan keys list`)")
    pol.signers = list(req)
    ignore = data.get("ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(g, str) and g.strip() for g in ignore):
        raise fail("ignore must be a list of file globs, e.g. [\"model.sig\"]")
    pol.ignore = list(ignore)
    return pol


def _typed(data: dict[str, Any], key: str, typ: type, default: Any, fail: Any) -> Any:
    if key not in data:
        return default
    if not isinstance(data[key], typ) or isinstance(data[key], bool) and typ is not bool:
        raise fail(f"{key} must be a {typ.__name__}")
    return data[key]


def _choice(data: dict[str, Any], key: str, choices: tuple[str, ...], default: str, fail: Any) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise fail(f"{key} must be one of {', '.join(choices)}, not {value!r}")
    return value


def _alpha(value: Any, where: str, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise fail(f"{where} must be a number in (0, 1), not {value!r}")
    return float(value)


def _rule(did: str, raw: Any, fail: Any) -> DetectorRule:
    if not isinstance(raw, dict):
        raise fail(f"detectors.{did} must be a table")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise fail(f"detectors.{did}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_RULE_KEYS))})")
    rule = DetectorRule(required=_typed(raw, "required", bool, True, fail),
                        action=_choice(raw, "action", ACTIONS, "fail", fail))
    if "claims" in raw and ("claim" in raw or "alpha" in raw):
        raise fail(f"detectors.{did}: use either claim/alpha or claims, not both")
    if "claims" in raw:
        if not isinstance(raw["claims"], dict) or not raw["claims"]:
            raise fail(f"detectors.{did}.claims must be a non-empty table of claim = alpha")
        rule.claims = {c: _alpha(a, f"detectors.{did}.claims.{c}", fail) for c, a in raw["claims"].items()}
    elif "claim" in raw or "alpha" in raw:
        claim = raw.get("claim", "")
        if not isinstance(claim, str):
            raise fail(f"detectors.{did}.claim must be a string")
        rule.claims = {claim: _alpha(raw["alpha"], f"detectors.{did}.alpha", fail) if "alpha" in raw else None}
    return rule


def load_policy(ref: str | Path | None, host: Any = None) -> Policy:
    """The default policy (``None``), a TOML file, or ``builtin:NAME`` / ``builtin:PACKAGE/NAME``."""
    if ref is None:
        return Policy()
    ref_s = str(ref)
    if ref_s.startswith("builtin:"):
        text, origin = _builtin(ref_s[len("builtin:"):], host)
        return parse_policy(text, origin)
    path = Path(ref_s)
    if not path.is_file():
        raise PolicyError(f"no such policy file: {path}")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read policy {path}: {exc}") from None
    return parse_policy(text, str(path))


def _policy_packages(host: Any) -> list[str]:
    """provscan itself, then the top-level package of every registered plugin module."""
    pkgs = ["provscan"]
    if host is not None:
        for _, plugin in host.pm.list_name_plugin():
            mod = getattr(plugin, "__name__", None) or getattr(type(plugin), "__module__", "")
            top = str(mod).split(".")[0]
            if top and top not in pkgs:
                pkgs.append(top)
    return pkgs


def builtin_policies(host: Any = None) -> dict[str, list[str]]:
    """Shipped policy names → the packages that ship them."""
    out: dict[str, list[str]] = {}
    for pkg in _policy_packages(host):
        try:
            folder = resources.files(pkg).joinpath("policies")
            entries = list(folder.iterdir()) if folder.is_dir() else []
        except (ModuleNotFoundError, TypeError, FileNotFoundError):
            continue
        for entry in entries:
            if entry.name.endswith(".toml"):
                out.setdefault(entry.name[:-5], []).append(pkg)
    return out


def _builtin(name: str, host: Any) -> tuple[str, str]:
    pkg, _, short = name.rpartition("/")
    if host is None:
        from provscan.plugins import get_host

        host = get_host()
    shipped = builtin_policies(host)
    owners = shipped.get(short, [])
    if pkg:
        owners = [o for o in owners if o == pkg]
    if not owners:
        known = ", ".join(f"builtin:{o}/{n}" for n, os_ in sorted(shipped.items()) for o in os_) or "none"
        raise PolicyError(f"no shipped policy {name!r} (shipped: {known})")
    if len(owners) > 1:
        raise PolicyError(f"policy {name!r} is shipped by {', '.join(owners)}: "
                          f"write builtin:PACKAGE/{short}")
    text = resources.files(owners[0]).joinpath("policies", f"{short}.toml").read_text("utf-8")
    return text, f"builtin:{owners[0]}/{short}"


# ---------------------------------------------------------------- versions


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def version_in_range(version: str, spec: str) -> bool:
    """``version`` satisfies a PEP 440 specifier such as ``">=0.1,<1"`` (``"*"`` or "" = any)."""
    if spec.strip() in ("", "*"):
        return True
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    try:
        spec_set = SpecifierSet(spec)
    except InvalidSpecifier:
        raise ValueError(f"invalid version range {spec!r}") from None
    try:
        return Version(version) in spec_set
    except InvalidVersion:
        return False


# ---------------------------------------------------------------- evaluation


def evaluate(policy: Policy, evidence: list[Evidence], plugins: dict[str, str] | None = None) -> PolicyVerdict:
    """Judge every detector's evidence. Findings under a ``fail`` rule fail the gate (exit 1);
    errors, inconclusive claims and missing required detectors make it inconclusive (exit 3)
    unless ``inconclusive = "warn"``. ``plugins`` maps distribution → version for the allow-list."""
    fails: list[str] = []
    unclear: list[str] = []
    warnings: list[str] = []
    judged: list[dict[str, Any]] = []
    seen = {ev.detector for ev in evidence}
    if not evidence:
        unclear.append("no detector ran: nothing was checked")
    for did in policy.required_detectors():
        if did not in seen:
            unclear.append(f"{did}: required by the policy but did not run")
    for ev in evidence:
        if policy.plugins and _norm(ev.plugin) != "provscan":
            allowed = policy.plugins.get(_norm(ev.plugin))
            version = (plugins or {}).get(ev.plugin, "?")
            if allowed is None:
                fails.append(f"{ev.detector}: plugin {ev.plugin} is not allowed by the policy")
                continue
            if not version_in_range(version, allowed):
                fails.append(f"{ev.detector}: plugin {ev.plugin} {version} is outside {allowed!r}")
                continue
        rule = policy.detectors.get(ev.detector)
        action = rule.action if rule else policy.unlisted
        if ev.error is not None:
            unclear.append(f"{ev.detector}: error: {ev.error}")
            continue
        for name, alpha in (rule.claims.items() if rule and rule.claims else [(None, None)]):
            claim = ev.claim(name or None)
            if claim is None:
                unclear.append(f"{ev.detector}: claim {name or '(primary)'} was not produced")
                continue
            decision = Decision(claim.decision or Decision.INCONCLUSIVE)
            level = claim.alpha
            if alpha is not None and claim.p_value is not None and decision in (
                    Decision.FINDING, Decision.NO_EVIDENCE):
                level = alpha
                decision = Decision.FINDING if claim.p_value <= alpha else Decision.NO_EVIDENCE
            judged.append({"detector": ev.detector, "claim": claim.name, "alpha": level,
                           "decision": decision.value, "action": action})
            p = "" if claim.p_value is None else f" (p={claim.p_value:.3g} <= alpha={level:g})"
            if decision == Decision.FINDING:
                (fails if action == "fail" else warnings).append(f"{ev.detector}/{claim.name}: finding{p}")
            elif decision in (Decision.INCONCLUSIVE, Decision.ERROR):
                unclear.append(f"{ev.detector}/{claim.name}: {decision.value}: {claim.summary}".rstrip(": "))
    if policy.inconclusive == "warn":
        warnings.extend(unclear)
        unclear = []
    if fails:
        return PolicyVerdict("fail", fails + unclear, warnings, judged)
    if unclear:
        return PolicyVerdict("inconclusive", unclear, warnings, judged)
    return PolicyVerdict("pass", [], warnings, judged)
