"""CLI commands, one module per area; each adds itself to :data:`provscan.cli.cli`."""
