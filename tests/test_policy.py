"""Policy files: strict parsing, evaluation, version ranges, shipped policies, CLI."""

import sys
import textwrap

import pytest

from provscan.errors import ProvscanError
from provscan.evidence import Claim, Decision, Evidence
from provscan.policy import Policy, evaluate, load_policy, parse_policy, version_in_range

GOOD = textwrap.dedent('''
    name = "gate"
    description = "release gate"
    inconclusive = "fail"
    unlisted = "warn"

    [detectors.file-safety]
    required = true

    [detectors."backdoor.x"]
    claims = { anomaly = 0.01, other = 0.2 }
    action = "warn"

    [detectors.taggants]
    claim = "ownership"
    alpha = 0.001
    required = false

    [plugins]
    provscan_backdoor = ">=0.1,<1"

    [signers]
    required = ["''' + "a" * 64 + '''"]
''')


def ev(det, claims, primary=None, error=None, plugin="provscan"):
    return Evidence(det, "1", plugin, "classifier", claims, primary=primary, error=error)


def claim(name, p, alpha=0.05, decision=None):
    return Claim(name, "H0", "test", 1.0, p, alpha, 10, decision=decision)


def test_parse_good_policy():
    pol = parse_policy(GOOD, "gate.toml")
    assert pol.name == "gate" and pol.unlisted == "warn" and pol.inconclusive == "fail"
    assert pol.required_detectors() == ["file-safety", "backdoor.x"]
    assert pol.detectors["backdoor.x"].claims == {"anomaly": 0.01, "other": 0.2}
    assert pol.detectors["backdoor.x"].action == "warn"
    assert pol.detectors["taggants"].claims == {"ownership": 0.001}
    assert pol.plugins == {"provscan-backdoor": ">=0.1,<1"}
    assert pol.signers == ["a" * 64]
    assert len(pol.sha256) == 64 and pol.sha256 != Policy().sha256


@pytest.mark.parametrize("text,needle", [
    ("nmae = 'x'", "unknown key 'nmae'"),
    ("inconclusive = 'ignore'", "inconclusive must be one of"),
    ("[detectors.x]\nrequird = true", "unknown key 'requird'"),
    ("[detectors.x]\nalpha = 1.5", "alpha must be a number in (0, 1)"),
    ("[detectors.x]\nalpha = true", "alpha must be a number"),
    ("[detectors.x]\naction = 'explode'", "action must be one of"),
    ("[detectors.x]\nclaim = 'a'\nclaims = {b = 0.1}", "either claim/alpha or claims"),
    ("[plugins]\nfoo = 3", "version range must be a string"),
    ("[plugins]\nfoo = '>>1'", "invalid version range"),
    ("[signers]\nrequired = ['abc']", "signers.required"),
    ("[signers]\nextra = 1", "signers must be a table"),
    ("version = 2", "unsupported version"),
    ("detectors = 3", "detectors must be a table"),
    ("name = [", "not valid TOML"),
    ("name = 5", "name must be a str"),
])
def test_malformed_policies_one_line(text, needle):
    with pytest.raises(ProvscanError) as err:
        parse_policy(text, "p.toml")
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and msg.startswith("policy p.toml")


def test_default_policy_matches_interim_behaviour():
    pol = Policy()
    assert evaluate(pol, [ev("a", [claim("c", 0.5)])]).status == "pass"
    assert evaluate(pol, [ev("a", [claim("c", 0.01)])]).status == "fail"
    assert evaluate(pol, [ev("a", [claim("c", None)])]).status == "inconclusive"
    assert evaluate(pol, [ev("a", [], error="boom")]).exit_code == 3
    v = evaluate(pol, [ev("a", [claim("c", 0.01)]), ev("b", [], error="boom")])
    assert v.status == "fail" and any("boom" in r for r in v.reasons)


def test_alpha_override_and_claim_selection():
    pol = parse_policy('[detectors.d]\nclaim = "strong"\nalpha = 0.01\n')
    evidence = [ev("d", [claim("strong", 0.03), claim("weak", 0.5)], primary="weak")]
    v = evaluate(pol, evidence)
    assert v.status == "pass" and v.judged == [
        {"detector": "d", "claim": "strong", "alpha": 0.01, "decision": "no-evidence", "action": "fail"}]
    pol = parse_policy('[detectors.d]\nclaims = {strong = 0.05, weak = 0.6}\n')
    v = evaluate(pol, evidence)
    assert v.status == "fail" and len(v.reasons) == 2
    pol = parse_policy('[detectors.d]\nclaim = "missing"\n')
    assert evaluate(pol, evidence).status == "inconclusive"
    # a decision that was not made from the p-value (inconclusive) is not re-judged by alpha
    pol = parse_policy('[detectors.d]\nclaim = "x"\nalpha = 0.5\n')
    v = evaluate(pol, [ev("d", [claim("x", 0.1, decision=Decision.INCONCLUSIVE)])])
    assert v.status == "inconclusive"


def test_required_unlisted_warn_and_inconclusive_warn():
    pol = parse_policy('unlisted = "warn"\n[detectors.must]\n')
    v = evaluate(pol, [ev("other", [claim("c", 0.001)])])
    assert v.status == "inconclusive" and "must: required" in v.reasons[0]
    assert v.warnings and "other/c: finding" in v.warnings[0]
    pol = parse_policy('inconclusive = "warn"\n[detectors.must]\n')
    v = evaluate(pol, [ev("x", [], error="boom")])
    assert v.status == "pass" and len(v.warnings) == 2


def test_plugin_allow_list():
    pol = parse_policy('[plugins]\nprovscan-backdoor = ">=0.2"\n')
    e = [ev("d", [claim("c", 0.5)], plugin="provscan_backdoor")]
    assert evaluate(pol, e, {"provscan_backdoor": "0.3"}).status == "pass"
    assert evaluate(pol, e, {"provscan_backdoor": "0.1"}).status == "fail"
    assert evaluate(pol, [ev("d", [claim("c", 0.5)], plugin="evil")], {"evil": "1"}).status == "fail"
    assert evaluate(pol, [ev("file-safety", [claim("c", 0.5)])], {}).status == "pass"  # provscan itself


def test_version_ranges():
    assert version_in_range("0.5", ">=0.1,<1") and not version_in_range("1.0", ">=0.1,<1")
    assert version_in_range("anything", "*") and version_in_range("1.0rc1", "")
    assert not version_in_range("not-a-version", ">=0")
    with pytest.raises(ValueError):
        version_in_range("1", "=>1")


def test_builtin_policies_from_a_plugin_package(tmp_path, monkeypatch, register_plugin, run_cli):
    pkg = tmp_path / "provscan_fakepol"
    (pkg / "policies").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("")
    (pkg / "policies" / "strict.toml").write_text('name = "fake-strict"\ninconclusive = "fail"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    mod = importlib.import_module("provscan_fakepol.plugin")
    register_plugin(mod, name="fakepol")
    pol = load_policy("builtin:strict")
    assert pol.name == "fake-strict" and pol.origin == "builtin:provscan_fakepol/strict"
    assert load_policy("builtin:provscan_fakepol/strict").name == "fake-strict"
    with pytest.raises(ProvscanError, match="no shipped policy"):
        load_policy("builtin:lenient")
    res = run_cli("policy", "list")
    assert "builtin:provscan_fakepol/strict" in res.output
    res = run_cli("policy", "check", "builtin:strict")
    assert res.exit_code == 0 and "valid: policy 'fake-strict'" in res.output
    sys.modules.pop("provscan_fakepol.plugin", None)
    sys.modules.pop("provscan_fakepol", None)


def test_cli_policy_check(tmp_path, run_cli, provscan_host):
    good = tmp_path / "gate.toml"
    good.write_text(GOOD)
    res = run_cli("policy", "check", good)  # backdoor.x is required but not installed here
    assert res.exit_code == 2 and res.output.count("\n") == 1, res.output
    assert "required detector 'backdoor.x' is not installed" in res.output
    optional = tmp_path / "optional.toml"
    optional.write_text(GOOD.replace('action = "warn"', 'action = "warn"\nrequired = false'))
    res = run_cli("policy", "check", optional)
    assert res.exit_code == 0, res.output
    assert "valid: policy 'gate'" in res.output and "'backdoor.x' is not installed" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors.x]\nwhatever = 1\n")
    res = run_cli("policy", "check", bad)
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "unknown key 'whatever'" in res.output
    res = run_cli("policy", "check", tmp_path / "missing.toml")
    assert res.exit_code == 2 and "no such policy file" in res.output


def test_docs_policy_example_parses_and_workflow_is_yaml():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "policy.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    pol = parse_policy(example, "docs/policy.md")
    assert pol.name == "release-gate" and pol.signers and pol.plugins
    yaml = pytest.importorskip("yaml")
    job = yaml.safe_load((docs / "examples" / "release-gate.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in job["jobs"]["gate"]["steps"])
    assert "provscan verify" in steps and "--policy gate.toml" in steps


def test_provscan_ships_fail_closed_policy(provscan_host):
    pol = load_policy("builtin:fail-closed", provscan_host)
    assert pol.origin == "builtin:provscan/fail-closed"
    assert pol.required_detectors() == ["file-safety"] and pol.inconclusive == "fail"


def test_policy_check_and_verify_agree_on_an_unknown_detector(tmp_path, run_cli, provscan_host,
                                                              monkeypatch):
    """The same policy is refused the same way by `policy check` and by `verify` (exit 2)."""
    monkeypatch.chdir(tmp_path)
    pol = tmp_path / "p.toml"
    pol.write_text('[detectors."nosuch.detector"]\n')
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.json").write_text("{}")
    checked = run_cli("policy", "check", pol)
    verified = run_cli("verify", tmp_path / "model", "--policy", pol)
    assert checked.exit_code == verified.exit_code == 2, checked.output + verified.output
    for res in (checked, verified):
        assert res.output.count("\n") == 1 and "nosuch.detector" in res.output


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_default_policy_digest_is_that_of_the_effective_policy():
    import hashlib
    import json

    default = load_policy(None)
    assert default.sha256 != EMPTY_SHA256 and default.source_sha256 is None
    effective = default.effective()
    assert effective["inconclusive"] == "fail" and effective["detectors"] == {}
    canon = json.dumps(effective, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert default.sha256 == hashlib.sha256(canon.encode()).hexdigest()
    # a file that spells out the defaults judges alike, so it has the same effective digest
    spelled = parse_policy('name = "default"\ninconclusive = "fail"\nunlisted = "fail"\n')
    assert spelled.sha256 == default.sha256 and spelled.source_sha256 is not None
    # any change of what is applied changes it
    assert parse_policy('name = "default"\ninconclusive = "warn"\n').sha256 != default.sha256
    assert parse_policy('name = "default"\n[detectors.x]\nalpha = 0.01\n').sha256 != default.sha256


def test_certificate_under_the_default_policy_records_the_effective_digest(tmp_path, provscan_host):
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from provscan import api
    from provscan.certificate import build_statement, sign_statement, verify_envelope

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "notes.json").write_text("{}")
    result = api.verify(tmp_path / "model", formats=("json",), host=provscan_host)
    key = Ed25519PrivateKey.generate()
    env = sign_statement(build_statement(result), [key])
    pred = verify_envelope(env, [key.public_key()]).predicate
    assert pred["policy"]["sha256"] == load_policy(None).sha256 != EMPTY_SHA256
    assert pred["policy"]["sourceSha256"] is None
    assert pred["policy"]["effective"] == load_policy(None).effective()
    report = json.loads(result.rendered["json"])
    assert report["policy"]["sha256"] == pred["policy"]["sha256"]
    assert json.loads(base64.b64decode(json.loads(env)["payload"]))["predicate"]["policy"] == pred["policy"]
