"""Tiny real Hugging Face checkpoints built from configs (random init), for tests and examples.

Nothing is downloaded: the tokenizer is a word-level ``tokenizers`` model trained on the fly on
the given texts and wrapped in ``PreTrainedTokenizerFast``; the models are 2-layer GPT-2 / BART /
T5 / BERT / ViT with a few thousand parameters, saved with ``save_pretrained`` (safetensors).

    from provscan.testing.tiny import save_tiny_hf
    save_tiny_hf("gpt2", out_dir)            # then: provscan inspect out_dir / provscan verify out_dir
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

DEFAULT_TEXTS = (
    "the cat sat on the mat", "a dog ran in the park", "the sun is bright today",
    "my model is small and fast", "please answer the question", "hello world how are you",
    "this is a tiny test corpus", "the quick brown fox jumps over the lazy dog",
)
SPECIALS = ["<pad>", "<unk>", "<s>", "</s>"]


def word_tokenizer(texts: Iterable[str] = DEFAULT_TEXTS, max_length: int = 64) -> Any:
    """A word-level fast tokenizer trained on ``texts`` (pad/unk/bos/eos specials)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=SPECIALS))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", model_max_length=max_length)


def tiny_model(arch: str, vocab_size: int, num_labels: int = 3, image_size: int = 8) -> Any:
    """A randomly initialised 2-layer model of ``arch``: gpt2, bart, t5, bert (sequence
    classification) or vit (image classification, ``image_size`` pixels, 3 channels)."""
    import torch
    import transformers

    tf: Any = transformers  # configs take model-specific keyword arguments
    torch.manual_seed(0)
    ids: dict[str, Any] = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if arch == "gpt2":
        cfg = tf.GPT2Config(vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2, **ids)
        return tf.GPT2LMHeadModel(cfg)
    if arch == "bart":
        cfg = tf.BartConfig(vocab_size=vocab_size, d_model=32, encoder_layers=2, decoder_layers=2,
                            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                            decoder_ffn_dim=64, max_position_embeddings=64, decoder_start_token_id=2, **ids)
        return tf.BartForConditionalGeneration(cfg)
    if arch == "t5":
        cfg = tf.T5Config(vocab_size=vocab_size, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                          num_decoder_layers=2, num_heads=2, decoder_start_token_id=0,
                          pad_token_id=0, eos_token_id=3)
        return tf.T5ForConditionalGeneration(cfg)
    if arch == "bert":
        cfg = tf.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=64, num_labels=num_labels, pad_token_id=0)
        return tf.BertForSequenceClassification(cfg)
    if arch == "vit":
        cfg = tf.ViTConfig(image_size=image_size, patch_size=4, num_channels=3, hidden_size=32,
                           num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=num_labels)
        return tf.ViTForImageClassification(cfg)
    raise ValueError(f"unknown tiny architecture {arch!r} (gpt2, bart, t5, bert, vit)")


def save_tiny_hf(arch: str, out: Path, texts: Iterable[str] = DEFAULT_TEXTS, safe_serialization: bool = True,
                 num_labels: int = 3) -> Path:
    """Save a tiny ``arch`` checkpoint (model, tokenizer or image processor) to ``out``.

    ``safe_serialization=False`` writes ``pytorch_model.bin`` (``torch.save`` of the state dict,
    what transformers wrote before safetensors) instead of ``model.safetensors``.
    """
    out = Path(out)
    if arch == "vit":
        from transformers import ViTImageProcessor

        model = tiny_model(arch, 0, num_labels=num_labels)
        ViTImageProcessor(size={"height": 8, "width": 8}).save_pretrained(out)
    else:
        tok = word_tokenizer(texts)
        model = tiny_model(arch, len(tok), num_labels=num_labels)
        tok.save_pretrained(out)
    model.save_pretrained(out)
    if not safe_serialization:  # the pytorch_model.bin layout (torch.save of the state dict)
        import torch

        torch.save(model.state_dict(), out / "pytorch_model.bin")
        (out / "model.safetensors").unlink()
    return out
