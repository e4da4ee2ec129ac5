"""Signature files (model-signing's ``model.sig``, a Sigstore bundle) are data, recognised by content."""

import json
import pickle

from provscan.safety import SafetyVerdict, scan_path

BUNDLE = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
          "verificationMaterial": {"publicKey": {"hint": "00" * 32}, "tlogEntries": []},
          "dsseEnvelope": {"payload": "e30=", "payloadType": "application/vnd.in-toto+json",
                           "signatures": [{"sig": "AA==", "keyid": ""}]}}


def by_path(report):
    return {f.path: f for f in report.files}


def test_sigstore_bundle_is_safe_data_and_look_alikes_are_not(tmp_path):
    (tmp_path / "model.sig").write_text(json.dumps(BUNDLE))
    (tmp_path / "other.sig").write_text(json.dumps({"mediaType": "text/plain"}))
    (tmp_path / "broken.sig").write_text("{not json")
    (tmp_path / "pickled.sig").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    (tmp_path / "binary.sig").write_bytes(b"\x30\x45\x02\x20")
    files = by_path(scan_path(tmp_path))
    assert files["model.sig"].verdict == SafetyVerdict.SAFE
    assert files["model.sig"].format == "sigstore-bundle"
    assert "not loaded" in files["model.sig"].info["data"]
    for name in ("other.sig", "broken.sig", "binary.sig"):
        assert files[name].verdict == SafetyVerdict.INCONCLUSIVE, name
    assert files["pickled.sig"].format not in ("sigstore-bundle", "unknown")  # content decides
