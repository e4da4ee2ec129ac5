"""A stand-in per-target workload for benchmarks/fleet.py (registered with ``--plugin``).

``bench.forward``: ``n`` real forward passes of the target classifier on seeded random images
(batches of 64), then an exact binomial test of H0 "the top-1 class is uniform over the classes"
on the predictions for the first class (a real, cheap statistic; the benchmark is about the cost,
not the verdict, which is no-evidence or finding as the model happens to be).
"""

from __future__ import annotations

import numpy as np

import provscan
from provscan.detectors import Detector
from provscan.evidence import Claim, Evidence
from provscan.params import Param
from provscan.stats import binomial_test


class Forward(Detector):
    id = "bench.forward"
    applies_to = ("classifier",)
    params = (Param("n", int, 2048, "forward passes"),)

    def run(self, target, params, rng):
        n = params["n"]
        top = []
        for start in range(0, n, 64):
            x = rng.random((min(64, n - start), 1, 8, 8), dtype=np.float32)
            top.append(np.asarray(target.logits(x)).argmax(axis=1))
        preds = np.concatenate(top)
        k = int(np.sum(preds == 0))
        test = binomial_test(k, n, 0.1, "two-sided")
        claim = Claim("uniform-top1", "the top-1 class of a random image is uniform over 10 classes",
                      test.test, float(k), test.p_value, 0.001, n, counts={"class0": k})
        return Evidence(self.id, self.version, self.plugin, target.kind, [claim], primary="uniform-top1")


@provscan.hookimpl
def register_detectors():
    return [Forward]
