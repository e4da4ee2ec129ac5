"""Developer tools that ship with provscan but are not part of its public API (``python -m provscan.dev.docgen``)."""
