"""provscan-spin: find model-spinning (meta-backdoor) triggers in language models, and write
spinned or trigger-poisoned text datasets to test such probes.

After Bagdasaryan & Shmatikov, "Spinning Language Models: Risks of Propaganda-As-A-Service and
Countermeasures" (IEEE S&P 2022, arXiv 2112.05224).
"""

__version__ = "0.1.0"
