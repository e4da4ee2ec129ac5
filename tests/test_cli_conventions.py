"""CLI conventions: --help everywhere, --json is valid JSON, errors are one line, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from provscan import errors
from provscan.errors import ProvscanError
from provscan.plugins import get_host
from provscan.testing import cli_for_host


def all_commands() -> list[list[str]]:
    group = cli_for_host(get_host())
    out: list[list[str]] = []

    def walk(cmd: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = click.Context(cmd, info_name=path[-1] if path else "provscan", parent=parent)
        out.append(path)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name], ctx)

    walk(group, [], None)
    return out


COMMANDS = all_commands()


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "provscan" for p in COMMANDS])
def test_help_and_json_flag(run_cli, path):
    res = run_cli(*path, "--help")
    assert res.exit_code == 0 and "Usage:" in res.output
    cmd = cli_for_host(get_host())
    ctx = click.Context(cmd)
    for name in path:
        cmd = cmd.get_command(ctx, name)  # type: ignore[union-attr]
    assert cmd is not None
    if isinstance(cmd, click.Group):
        return
    options = {o for p in cmd.params for o in getattr(p, "opts", [])}
    assert "--json" in options, f"provscan {' '.join(path)} has output but no --json"
    if "--json" in options:
        assert any("json" in (p.help or "").lower() or p.name in {"as_json", "json"}
                   for p in cmd.params if isinstance(p, click.Option))


def test_json_outputs_parse(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVSCAN_HOME", str(tmp_path / "home"))
    (tmp_path / "f.bin").write_bytes(b"1234")
    for args in (["plugins", "--json"], ["plugins", "--json", "--all"],
                 ["digest", tmp_path, "--json"], ["policy", "list", "--json"],
                 ["policy", "check", "builtin:fail-closed", "--json"],
                 ["keys", "new", "ci", "--json"], ["keys", "list", "--json"]):
        res = run_cli(*args)
        assert res.exit_code == 0, res.output
        json.loads(res.stdout)
        assert res.stderr == ""


@pytest.mark.parametrize("args,needle", [
    (["digest", "/nonexistent/provscan/x"], "no such file"),
    (["verify", "/nonexistent/provscan/x"], "no such file"),
    (["verify", ".", "-d", "no-such-detector"], "unknown detector"),
    (["verify", ".", "-p", "malformed"], "malformed --param"),
])
def test_input_errors_are_one_line_exit_2(run_cli, args, needle):
    res = run_cli(*args)
    assert res.exit_code == errors.EXIT_USAGE
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: ") and needle in res.stderr
    assert "Traceback" not in res.output


def test_verbose_shows_the_exception(run_cli):
    res = run_cli("-v", "digest", "/nonexistent/provscan/x")
    assert isinstance(res.exception, ProvscanError)


def test_usage_errors_exit_2(run_cli):
    assert run_cli("no-such-command").exit_code == 2
    assert run_cli("digest").exit_code == 2  # missing argument
    assert run_cli("digest", ".", "--jobs", "0").exit_code == 2


def test_exit_code_constants():
    assert (errors.EXIT_OK, errors.EXIT_POLICY_FAILED, errors.EXIT_USAGE,
            errors.EXIT_INCONCLUSIVE) == (0, 1, 2, 3)
    assert ProvscanError.exit_code == 2


def test_python_dash_m_and_version():
    res = subprocess.run([sys.executable, "-m", "provscan", "--version"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("provscan, version ")


def test_shell_completion_script():
    """``_PROVSCAN_COMPLETE=bash_source provscan`` prints click's completion script."""
    env = {**__import__("os").environ, "_PROVSCAN_COMPLETE": "bash_source"}
    res = subprocess.run([sys.executable, "-c", "from provscan.cli import main; main()"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "complete" in res.stdout and "_PROVSCAN_COMPLETE" in res.stdout
