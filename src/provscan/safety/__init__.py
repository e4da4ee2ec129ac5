"""File-safety scan: decide, before anything is loaded, whether a checkpoint's files are safe.

Nothing here executes code from the files. Each file gets a verdict: ``safe`` (understood and
free of anything outside the allowlists), ``unsafe`` (a forbidden construct was found) or
``inconclusive`` (not understood: never treated as safe).
"""

from provscan.safety.report import FileSafety, SafetyReport, SafetyVerdict
from provscan.safety.scan import scan_path

__all__ = ["FileSafety", "SafetyReport", "SafetyVerdict", "scan_path"]
