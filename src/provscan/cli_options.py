"""The command-line options that say how to open a target, shared by every command that opens
one (``verify``, ``verify-many``, plugin commands such as ``backdoor score-references``)."""

from __future__ import annotations

from typing import Any

import click

from provscan.errors import ProvscanError


def target_options(f: Any) -> Any:
    """Click decorator: the options that say how to open a target (``--device``, ``--dtype``,
    ``--batch-size``, ``--model-factory``, the input options of a plain state dict, ``--ignore``
    and ``--revision``). Turn the
    values into :class:`~provscan.targets.base.OpenOptions` with :func:`options_from_cli`."""
    for opt in reversed([
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--dtype", default="auto", show_default=True, help="auto, float32, bfloat16, float16."),
        click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1)),
        click.option("--model-factory", default=None, help="module:callable building the architecture for a plain state dict."),
        click.option("--input-shape", default=None, metavar="C,H,W",
                     help="Input shape of a plain state dict's model (else inferred from a detector's data, e.g. the taggants secret or clean_data)."),
        click.option("--num-classes", default=None, type=click.IntRange(2, 100_000),
                     help="Classes of a plain state dict's model (else a num_classes attribute or the last Linear layer)."),
        click.option("--input-mean", default=None, metavar="M[,M...]",
                     help="Normalisation the model expects on [0, 1] inputs: mean per channel (or one value)."),
        click.option("--input-std", default=None, metavar="S[,S...]",
                     help="Normalisation the model expects on [0, 1] inputs: std per channel (or one value)."),
        click.option("--ignore", "ignore", multiple=True, metavar="GLOB",
                     help="Leave files matching GLOB out of the digest, scan and load (repeatable; recorded "
                          "in the certificate, which then does not cover them)."),
        click.option("--revision", default=None,
                     help="Revision (branch, tag or commit) of an hf://org/name target."),
    ]):
        f = opt(f)
    return f


def _numbers(option: str, raw: str | None, kind: type) -> tuple[Any, ...] | None:
    """``"1,28,28"`` → ``(1, 28, 28)``; a usage error (exit 2) when malformed."""
    import math

    if raw is None:
        return None
    try:
        values = tuple(kind(v) for v in raw.split(","))
    except ValueError:
        raise ProvscanError(f"{option} {raw!r}: expected comma-separated numbers") from None
    if kind is float and not all(math.isfinite(v) for v in values):
        raise ProvscanError(f"{option} {raw!r}: values must be finite")
    return values


def options_from_cli(device: str, dtype: str, batch_size: int, model_factory: str | None,
                 input_shape: str | None = None, num_classes: int | None = None,
                 input_mean: str | None = None, input_std: str | None = None,
                 ignore: tuple[str, ...] = (), revision: str | None = None) -> Any:
    """The :class:`~provscan.targets.base.OpenOptions` for the values of :func:`target_options`
    (malformed values are usage errors: :class:`~provscan.errors.ProvscanError`)."""
    from provscan.targets.base import OpenOptions

    shape = _numbers("--input-shape", input_shape, int)
    if shape is not None and (len(shape) != 3 or min(shape) < 1 or max(shape) > 4096 or shape[0] > 16):
        raise ProvscanError(f"--input-shape {input_shape!r}: expected C,H,W with 1 <= C <= 16 and "
                            "1 <= H, W <= 4096")
    mean = _numbers("--input-mean", input_mean, float)
    std = _numbers("--input-std", input_std, float)
    if std is not None and min(std) <= 0:
        raise ProvscanError(f"--input-std {input_std!r}: values must be > 0")
    for name, values in (("--input-mean", mean), ("--input-std", std)):
        if values is not None and shape is not None and len(values) not in (1, shape[0]):
            raise ProvscanError(f"{name}: {len(values)} values for {shape[0]} channels")
    return OpenOptions(device=device, dtype=dtype, batch_size=batch_size, model_factory=model_factory,
                       input_shape=shape, num_classes=num_classes, input_mean=mean, input_std=std,
                       ignore=tuple(ignore), revision=revision)
