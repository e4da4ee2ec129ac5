"""pytest fixtures for plugin authors (auto-loaded through the ``pytest11`` entry point).

- ``provscan_host``: a fresh :class:`provscan.plugins.Host` with the built-ins and no entry points,
  installed as the process host (``get_host()``) for the duration of the test.
- ``register_plugin``: ``register_plugin(obj, name=None)`` registers a plugin module or object on
  ``provscan_host`` and always unregisters it after the test, even when the test fails.
- ``run_cli``: ``run_cli("verify", path, ...)`` runs the CLI in-process against the process host
  (with the commands that its plugins add through ``register_commands``) and returns the click
  ``Result`` (``exit_code``, ``stdout``, ``stderr``, ``output``).
- ``shared_artifact``: ``shared_artifact(key, build)`` builds an expensive artifact (a trained
  model directory) once per test session, shared by pytest-xdist workers through a file lock.

See docs/plugins/testing.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import Result

from provscan import plugins as _plugins

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@pytest.fixture
def provscan_host(monkeypatch: pytest.MonkeyPatch) -> Iterator[_plugins.Host]:
    """A fresh host (built-ins only, entry points off) installed as the process host."""
    host = _plugins.new_host(load_entry_points=False)
    monkeypatch.setattr(_plugins, "_host", host)
    yield host


@pytest.fixture
def register_plugin(provscan_host: _plugins.Host) -> Iterator[Callable[..., str]]:
    """``register_plugin(obj, name=None, dist=("test-plugin", "0"))`` -> the registered name."""
    registered: list[Any] = []

    def _register(obj: Any, name: str | None = None,
                  dist: tuple[str, str] = ("test-plugin", "0")) -> str:
        registered_name = provscan_host.register(obj, name=name, dist=dist)
        registered.append(obj)
        return registered_name

    yield _register
    for obj in reversed(registered):
        with contextlib.suppress(Exception):
            provscan_host.unregister(obj)


def cli_for_host(host: _plugins.Host) -> click.Group:
    """A copy of the ``provscan`` group with the commands that ``host``'s plugins add.

    The process-wide group is left untouched, so commands registered by a test plugin never leak
    into other tests.
    """
    from provscan.cli import cli

    group = type(cli)(name=cli.name, commands=dict(cli.commands), params=list(cli.params),
                      callback=cli.callback, help=cli.help)
    group.host = host  # type: ignore[attr-defined]
    host.hook.register_commands(cli=group)
    return group


@pytest.fixture
def run_cli() -> Callable[..., Result]:
    """``run_cli(*args, input=None, env=None)`` -> click ``Result``; never raises."""
    from click.testing import CliRunner

    def _run(*args: Any, input: str | None = None,
             env: dict[str, str] | None = None) -> Result:
        group = cli_for_host(_plugins.get_host())
        runner = CliRunner()
        return runner.invoke(group, [str(a) for a in args], input=input, env=env,
                             catch_exceptions=True, prog_name="provscan")

    return _run


@pytest.fixture(scope="session")
def shared_artifact(tmp_path_factory: pytest.TempPathFactory
                    ) -> Callable[[str, Callable[[Path], None]], Path]:
    """``shared_artifact(key, build)``: ``build(path)`` writes the artifact to ``path`` once per
    session (across xdist workers); later calls return the same path. A failed build leaves
    nothing behind and is retried by the next caller."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if base.name.startswith("popen-gw") else base) / "provscan-artifacts"
    root.mkdir(parents=True, exist_ok=True)

    def _get(key: str, build: Callable[[Path], None]) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"shared_artifact key {key!r}: use letters, digits, '.', '_', '-'")
        target = root / key
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not (root / f"{key}.done").exists():
                    shutil.rmtree(target, ignore_errors=True)
                    try:
                        build(target)
                    except BaseException:
                        shutil.rmtree(target, ignore_errors=True)
                        raise
                    (root / f"{key}.done").touch()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        return target

    return _get
