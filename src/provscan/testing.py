"""pytest fixtures for plugin authors (auto-loaded through the ``pytest11`` entry point).

- ``provscan_host``: a fresh :class:`provscan.plugins.Host` with the built-ins and no entry points.
- ``register_plugin``: ``register_plugin(obj)`` registers a plugin on ``provscan_host`` and the
  process host for the test, and always unregisters it afterwards.
- ``run_cli``: ``run_cli("verify", path, ...)`` runs the CLI in-process and returns the click result.
- ``shared_artifact``: ``shared_artifact(key, build)`` builds an expensive artifact (a trained
  model directory) once per test session, shared by pytest-xdist workers through a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provscan import plugins as _plugins


@pytest.fixture
def provscan_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[_plugins.Host]:
    """A fresh host (built-ins only) installed as the process host for the test."""
    host = _plugins.new_host(load_entry_points=False)
    monkeypatch.setattr(_plugins, "_host", host)
    yield host


@pytest.fixture
def register_plugin(provscan_host: _plugins.Host) -> Iterator[Callable[..., str]]:
    registered: list[Any] = []

    def _register(obj: Any, name: str | None = None) -> str:
        n = provscan_host.register(obj, name=name, dist=("test-plugin", "0"))
        registered.append(obj)
        return n

    yield _register
    for obj in registered:
        with contextlib.suppress(Exception):
            provscan_host.unregister(obj)


@pytest.fixture
def run_cli() -> Callable[..., Any]:
    from click.testing import CliRunner

    from provscan.cli import cli

    def _run(*args: Any, input: str | None = None, env: dict[str, str] | None = None) -> Any:
        runner = CliRunner()
        return runner.invoke(cli, [str(a) for a in args], input=input, env=env, catch_exceptions=True)

    return _run


@pytest.fixture(scope="session")
def shared_artifact(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``shared_artifact(key, build)``: ``build(path)`` writes the artifact to ``path`` once per session."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if base.name.startswith("popen-gw") else base) / "provscan-artifacts"
    root.mkdir(parents=True, exist_ok=True)

    def _get(key: str, build: Callable[[Path], None]) -> Path:
        target = root / key
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not (root / f"{key}.done").exists():
                    shutil.rmtree(target, ignore_errors=True)
                    build(target)
                    (root / f"{key}.done").touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return target

    return _get
