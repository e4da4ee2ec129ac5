"""Data-poisoning injectors for provscan (BadNets, blended, clean-label) and trigger helpers."""

from provscan_poison.triggers import (
    Trigger,
    apply_trigger,
    attack_success_rate,
    load_secret,
    triggered_labels,
)

__version__ = "0.1.0"
__all__ = ["Trigger", "apply_trigger", "attack_success_rate", "load_secret", "triggered_labels"]
