"""Text scorers (meta-task statistics) and output distances (the meta-task-agnostic statistic).

Scorers follow the ``register_scorers`` protocol: a class with ``name`` and
``score(texts) -> list[float]``. Those that need a checkpoint take it as ``checkpoint=`` and set
``needs_checkpoint = True``.

Distances compare an output with the unperturbed output: 0 for identical texts, up to 1.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from provscan import ProvscanError

if TYPE_CHECKING:
    import numpy as np


class SentimentLexiconScorer:
    """VADER compound sentiment in [-1, 1] (lexicon shipped with vaderSentiment; no model)."""

    name: ClassVar[str] = "sentiment-lexicon"
    needs_checkpoint: ClassVar[bool] = False
    description: ClassVar[str] = "VADER lexicon compound sentiment, -1 (negative) to 1 (positive)"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> list[float]:
        return [float(self._analyzer.polarity_scores(t)["compound"]) for t in texts]


def _load_local(cls: Any, checkpoint: str, what: str) -> Any:
    path = Path(checkpoint)
    if not (path / "config.json").is_file():
        raise ProvscanError(f"{what} checkpoint {checkpoint}: not a Hugging Face directory (no config.json)")
    try:
        return cls.from_pretrained(str(path), local_files_only=True, trust_remote_code=False,
                                   use_safetensors=True)
    except OSError as exc:
        raise ProvscanError(f"{what} checkpoint {checkpoint}: {exc}".splitlines()[0]) from None


class HFClassifierScorer:
    """Probability of one label of a local Hugging Face text-classification checkpoint
    (safetensors only, no remote code). ``label`` is a label name or index; default: the last."""

    name: ClassVar[str] = "hf-classifier"
    needs_checkpoint: ClassVar[bool] = True
    description: ClassVar[str] = "probability of a label of a local text-classification checkpoint"

    def __init__(self, checkpoint: str, label: str | None = None, device: str = "auto",
                 batch_size: int = 64) -> None:
        import transformers

        from provscan import resolve_device

        self.model = _load_local(transformers.AutoModelForSequenceClassification, checkpoint, "classifier")
        self.tokenizer = _load_local(transformers.AutoTokenizer, checkpoint, "classifier")
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        labels = {str(v): int(k) for k, v in (self.model.config.id2label or {}).items()}
        n = int(self.model.config.num_labels)
        if label is None or label == "":
            self.label = n - 1
        elif label in labels:
            self.label = labels[label]
        elif str(label).isdigit() and int(label) < n:
            self.label = int(label)
        else:
            raise ProvscanError(f"classifier has no label {label!r} (labels: {', '.join(labels) or n})")

    def score(self, texts: Sequence[str]) -> list[float]:
        import torch

        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(list(texts[i : i + self.batch_size]), return_tensors="pt",
                                     padding=True, truncation=True).to(self.device)
                probs = self.model(**enc).logits.float().softmax(-1)[:, self.label]
                out += probs.cpu().tolist()
        return out


def _ngrams(text: str) -> Counter[str]:
    words = text.lower().split()
    return Counter(words + [f"{a} {b}" for a, b in zip(words, words[1:])])


def lexical_distance(a: str, b: str) -> float:
    """1 - cosine similarity of word unigram+bigram counts (lower-cased, whitespace split).
    Two empty texts are identical (0); one empty text is maximally far (1)."""
    ca, cb = _ngrams(a), _ngrams(b)
    if not ca and not cb:
        return 0.0
    if not ca or not cb:
        return 1.0
    dot = sum(v * cb[k] for k, v in ca.items())
    na = math.sqrt(sum(v * v for v in ca.values()))
    nb = math.sqrt(sum(v * v for v in cb.values()))
    dist = 1.0 - dot / (na * nb)
    return 0.0 if dist < 1e-12 else float(dist)


class EmbeddingDistance:
    """1 - cosine similarity of the sentence vectors of an encoder checkpoint.

    The checkpoint is opened through :func:`provscan.open_checkpoint` as an ``encoder`` target
    (digest and file-safety scan first; any location the host resolves, e.g. a sentence-
    transformers snapshot or a Hugging Face encoder directory); its pooling follows the
    snapshot's pooling configuration (mean by default).
    """

    def __init__(self, checkpoint: str, host: Any, device: str = "auto", batch_size: int = 64) -> None:
        from provscan import OpenOptions, open_checkpoint

        opts = OpenOptions(device=device, batch_size=batch_size, kind="encoder")
        with open_checkpoint(host, checkpoint, opts) as opened:
            if opened.target is None or not hasattr(opened.target, "embed"):
                raise ProvscanError(f"embedding checkpoint {checkpoint}: "
                                    f"{opened.load_error or 'not an encoder'}")
            self.target = opened.target

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        vecs = np.asarray(self.target.embed(list(texts)), dtype=np.float64)
        norms = np.linalg.norm(vecs, axis=-1, keepdims=True)
        return vecs / np.maximum(norms, 1e-12)

    def distances(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        import numpy as np

        ea, eb = self.embed(a), self.embed(b)
        return np.clip(1.0 - (ea * eb).sum(-1), 0.0, 2.0)


BUILTIN_SCORERS = [SentimentLexiconScorer, HFClassifierScorer]
