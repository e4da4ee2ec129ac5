"""provscan plugin: emergent-misalignment, CoT-monitor and trigger-elicitation evals.

Judges (registered through ``register_judges``) implement :class:`provscan_misalignment.judges.Judge`:
``score(rubric, items) -> list[JudgeScore]`` (0-100, or a REFUSAL / CODE label) and
``classify(rubric, items, labels) -> list[str]``, plus ``pin()`` describing exactly which judge ran
(kind, model, checkpoint digest or endpoint) for the evidence.
"""

__version__ = "0.1.0"
