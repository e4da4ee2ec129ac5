"""The declared public API: ``provscan.__all__`` resolves, stays light, and is all that plugins use.

First-party plugins (``plugins/*/src``) and the plugin tutorial may import only ``provscan``
names in ``__all__`` and the public submodules ``provscan.stats``, ``provscan.datasets`` and
``provscan.training``; the tutorial's tests may also use ``provscan.testing`` and its submodules.
(The plugins' own tests are white-box tests and are not checked.)
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import provscan

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = {"provscan.stats", "provscan.datasets", "provscan.training"}
TEST_MODULES = ("provscan.testing",)
SUBMODULE_NAMES = {"stats", "datasets", "training", "svg"}

# Deep imports that another engineer of issue 10 is removing in parallel: (module, name) -> who.
# Each entry must still be used somewhere (test_pending_entries_are_still_needed), so the list
# only shrinks.
PENDING: dict[tuple[str, str], str] = {
    ("provscan.plugins", "get_host"): "pipeline: the host is passed down (issue 10 item 2)",
    ("provscan.corpora", "find_corpus"): "light: corpora ship as package data (issue 10 item 9)",
}


def plugin_sources() -> list[Path]:
    return sorted(ROOT.glob("plugins/*/src/**/*.py"))


def tutorial_blocks() -> dict[str, str]:
    block = re.compile(r"^```python file=(\S+)\n(.*?)^```$", re.S | re.M)
    return dict(block.findall((ROOT / "docs" / "plugins" / "tutorial.md").read_text()))


def provscan_uses(tree: ast.AST) -> list[tuple[int, str, str]]:
    """Every ``(line, module, name)`` that the code takes from provscan: imports, and attribute
    access on a bare ``import provscan`` (``provscan.X``)."""
    uses: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and (
                node.module == "provscan" or node.module.startswith("provscan.")):
            uses += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            uses += [(node.lineno, alias.name, "") for alias in node.names
                     if alias.name.startswith("provscan.")]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "provscan"):
            uses.append((node.lineno, "provscan", node.attr))
    return uses


def allowed(module: str, name: str, in_tests: bool) -> bool:
    if module == "provscan":
        return name in provscan.__all__
    if module in PUBLIC_MODULES:
        return not name.startswith("_")
    if in_tests and (module in TEST_MODULES or module.startswith(tuple(m + "." for m in TEST_MODULES))):
        return True
    return (module, name) in PENDING


def violations(path: str, source: str, in_tests: bool) -> list[str]:
    return [f"{path}:{line}: {module}{'.' + name if name else ''}"
            for line, module, name in provscan_uses(ast.parse(source, path))
            if not allowed(module, name, in_tests)]


def test_plugins_use_only_the_public_api():
    bad = [v for p in plugin_sources() for v in violations(str(p.relative_to(ROOT)), p.read_text(), False)]
    assert plugin_sources(), "no plugin sources found"
    assert not bad, "plugins import internal provscan modules:\n" + "\n".join(bad)


def test_tutorial_uses_only_the_public_api():
    blocks = tutorial_blocks()
    assert blocks
    bad = [v for path, body in blocks.items() for v in violations(path, body, "/tests/" in path)]
    assert not bad, "the tutorial teaches internal imports:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from provscan.scan import run_scan\n", ["x.py:1: provscan.scan.run_scan"]),
    ("from provscan.digest import Manifest\n", ["x.py:1: provscan.digest.Manifest"]),
    ("import provscan.report.svg\n", ["x.py:1: provscan.report.svg"]),
    ("import provscan\nprovscan.api.verify()\n", ["x.py:2: provscan.api"]),
    ("from provscan import Detector, stats\nfrom provscan.stats import holm\n", []),
    ("from provscan import scan\n", ["x.py:1: provscan.scan"]),
    ("from provscan.testing.tiny import save_tiny_hf\n", ["x.py:1: provscan.testing.tiny.save_tiny_hf"]),
])
def test_the_checker_catches_deep_imports(source, expected):
    assert violations("x.py", source, in_tests=False) == expected


def test_pending_entries_are_still_needed():
    used = {(m, n) for p in plugin_sources()
            for _, m, n in provscan_uses(ast.parse(p.read_text()))}
    stale = sorted(set(PENDING) - used)
    assert not stale, f"remove from PENDING (no longer imported): {stale}"


def test_every_public_name_resolves():
    assert len(set(provscan.__all__)) == len(provscan.__all__)
    for name in provscan.__all__:
        value = getattr(provscan, name)
        assert (isinstance(value, types.ModuleType)) == (name in SUBMODULE_NAMES), name
    assert provscan.svg.__name__ == "provscan.report.svg"
    assert callable(provscan.progress) and provscan.verify.__module__ == "provscan.api"
    with pytest.raises(AttributeError):
        _ = provscan.no_such_name


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from provscan import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(provscan.__all__)


def test_import_provscan_is_light():
    code = ("import sys, provscan; heavy = {'torch', 'numpy', 'scipy', 'transformers', 'sklearn', 'tqdm'};"
            " print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True).stdout.strip()
    assert out == "[]"
