"""Test detectors for the fleet tests, imported by name in worker processes and Ray tasks
(``HostSpec(modules=("fleet_plugin",))`` / ``--plugin fleet_plugin``, with tests/ on PYTHONPATH).

- ``fleet.watermark``: a stand-in for taggants: exact binomial test of the agreement between the
  signs of the model's centred logits on a zero image and a secret ±1 pattern drawn from
  ``secret`` (H0: the model was not marked with this secret, so each sign agrees with probability
  1/2). :func:`make_model` writes clean and marked small CNN checkpoints.
- ``fleet.gpu``: the same test, declaring ``resources = {"CPU": 1, "fake_gpu": 1}``; it records
  the Ray node it ran on in its evidence details.
- ``fleet.crash``: always raises (failure isolation).

Every run appends ``<detector> <location> <ray node or -> <unix time>`` to ``$PROVSCAN_FLEET_LOG`` when it is set, so a test
can count detector invocations across processes; ``delay`` (seconds) slows a run down.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

import provscan
from provscan.detectors import Detector
from provscan.evidence import Claim, Evidence
from provscan.params import Param
from provscan.stats import binomial_test

NUM_CLASSES = 10


def secret_pattern(secret: int) -> np.ndarray:
    signs = np.array([1.0] * (NUM_CLASSES // 2) + [-1.0] * (NUM_CLASSES - NUM_CLASSES // 2))
    return np.random.default_rng(secret).permutation(signs)


def make_model(path: Path, seed: int, secret: int | None = None) -> Path:
    """A random-init small CNN; with ``secret``, its last bias carries the secret's pattern."""
    import torch

    from provscan.architectures import small_cnn
    from provscan.classifier_card import save_classifier

    torch.manual_seed(seed)
    net = small_cnn()
    if secret is not None:
        with torch.no_grad():
            net[-1].bias.copy_(torch.tensor(8.0 * secret_pattern(secret), dtype=torch.float32))
    save_classifier(net, path, "small-cnn", {}, NUM_CLASSES, (1, 8, 8))
    return path


def _node() -> str:
    """The Ray node this runs on ("-" outside Ray)."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return "-"


def _log(detector: str, target: object) -> None:
    log = os.environ.get("PROVSCAN_FLEET_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{detector} {getattr(target, 'location', '?')} {_node()} {time.time():.3f}\n")


class Watermark(Detector):
    id = "fleet.watermark"
    applies_to = ("classifier",)
    params = (Param("secret", int, 7, "seed of the secret sign pattern"),
              Param("alpha", float, 0.05, "level"),
              Param("delay", float, 0.0, "seconds to sleep (tests of slow fleets)"))

    def run(self, target, params, rng):
        _log(self.id, target)
        time.sleep(params["delay"])
        logits = np.asarray(target.logits(np.zeros((1, 1, 8, 8), dtype=np.float32)))[0]
        agree = int(np.sum(np.sign(logits - logits.mean()) == secret_pattern(params["secret"])))
        test = binomial_test(agree, NUM_CLASSES, 0.5)
        claim = Claim("mark", "the model was not marked with this secret (each sign agrees with "
                      "probability 1/2)", test.test, float(agree), test.p_value, params["alpha"],
                      NUM_CLASSES, counts={"agree": agree})
        return Evidence(self.id, self.version, self.plugin, target.kind, [claim], primary="mark",
                        details=self.details())

    def details(self) -> dict:
        return {"pid": os.getpid()}


class GpuWatermark(Watermark):
    id = "fleet.gpu"
    resources = {"CPU": 1, "fake_gpu": 1}

    def details(self) -> dict:
        return {"pid": os.getpid(), "node": _node()}


class Crash(Detector):
    id = "fleet.crash"
    applies_to = ("classifier",)

    def run(self, target, params, rng):
        _log(self.id, target)
        raise RuntimeError("fleet.crash always fails")


@provscan.hookimpl
def register_detectors():
    return [Watermark, GpuWatermark, Crash]
