"""The committed docs follow the code: hooks reference, CLI reference, links, exit codes."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from provscan import errors, hookspecs
from provscan.dev import docgen

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HOOKS_MD = DOCS / "plugins" / "hooks.md"
OWN_DOCS = ["usage.md", "cli.md", "plugins/index.md", "plugins/tutorial.md",
            "plugins/testing.md", "plugins/hooks.md"]


def spec_functions() -> dict[str, object]:
    return {n: f for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(f, "provscan_spec")}


def signature_text(name: str, func: object) -> str:
    """``def name(a: T, ...) -> R`` from inspect (annotations are strings: postponed evaluation)."""
    sig = inspect.signature(func)  # type: ignore[arg-type]
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {name}({params}) -> {sig.return_annotation}"


@pytest.mark.parametrize("name", sorted(spec_functions()))
def test_every_hook_is_documented_with_its_exact_signature(name):
    text = HOOKS_MD.read_text()
    func = spec_functions()[name]
    assert f"## {name}\n" in text
    assert signature_text(name, func) + "\n" in text
    first_line = (inspect.getdoc(func) or "").splitlines()[0]
    assert first_line and first_line in text
    if func.provscan_spec.get("firstresult"):  # type: ignore[attr-defined]
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        assert "@hookspec(firstresult=True)" in section


def test_every_hook_docstring_says_when_and_returns():
    for name, func in spec_functions().items():
        doc = inspect.getdoc(func) or ""
        assert "When:" in doc and "Returns:" in doc, name
        for param in inspect.signature(func).parameters:  # type: ignore[arg-type]
            assert f"{param}:" in doc, f"{name}: parameter {param} is not documented"


def test_generated_docs_are_not_stale():
    for rel, expected in docgen.generate(ROOT).items():
        current = (ROOT / rel).read_text() if (ROOT / rel).exists() else ""
        assert current == expected, f"{rel} is stale: run `python -m provscan.dev.docgen`"


def test_cli_reference_lists_every_command():
    from provscan.testing import cli_for_host

    host = docgen.docs_host(ROOT)
    text = (DOCS / "cli.md").read_text()
    group = cli_for_host(host)
    ctx = click.Context(group, info_name="provscan")
    for name in group.list_commands(ctx):
        assert f"## provscan {name}\n" in text, name


def test_check_mode_detects_stale_docs(tmp_path, capsys):
    root = tmp_path
    (root / "plugins").mkdir()
    assert docgen.main(["--root", str(root)]) == 0
    assert docgen.main(["--check", "--root", str(root)]) == 0
    hooks = root / docgen.HOOKS_DOC
    hooks.write_text(hooks.read_text().replace("open_target", "open_targets", 1))
    assert docgen.main(["--check", "--root", str(root)]) == 1
    assert "stale: docs/plugins/hooks.md" in capsys.readouterr().err


@pytest.mark.parametrize("rel", OWN_DOCS)
def test_relative_links_resolve(rel):
    path = DOCS / rel
    text = path.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (path.parent / target).exists(), f"{rel}: broken link {target}"


def test_exit_codes_documented():
    usage = (DOCS / "usage.md").read_text()
    for code in (errors.EXIT_OK, errors.EXIT_POLICY_FAILED, errors.EXIT_USAGE,
                 errors.EXIT_INCONCLUSIVE):
        assert re.search(rf"^\| {code} \| ", usage, re.M), code
