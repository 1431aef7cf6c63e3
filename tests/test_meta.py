"""Meta-tests: the public surface, the kind table, the docs and the first-party plugins agree."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import tokensmith
import tokensmith.testing
from tokensmith.core.kinds import KIND_TABLE, KINDS
from tokensmith.spec import hookspecs

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = sorted([p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists()]
                     + [ROOT / "examples" / "plugin-template"])
PLUGIN_MODULES = {f"tokensmith_{p.name.replace('-', '_')}" for p in PLUGIN_DIRS} | {"tokensmith_example"}


def _python_files(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if ".tox" not in p.parts and "build" not in p.parts)


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.lineno, node.module, alias.name


def test_plugins_import_only_the_public_api():
    public = {"tokensmith": set(tokensmith.__all__), "tokensmith.testing": set(tokensmith.testing.__all__)}
    bad = []
    for folder in PLUGIN_DIRS:
        own = f"tokensmith_{folder.name.replace('-', '_')}" if folder.name != "plugin-template" \
            else "tokensmith_example"
        for path in _python_files(folder):
            for line, module, name in _imports(path):
                where = f"{path.relative_to(ROOT)}:{line}"
                if module == "tokensmith" or module.startswith("tokensmith."):
                    if module not in public:
                        bad.append(f"{where} imports the internal module {module}")
                    elif name is not None and name not in public[module]:
                        bad.append(f"{where} imports {module}.{name}, which is not in {module}.__all__")
                top = module.split(".")[0]
                if top in PLUGIN_MODULES and top != own:
                    bad.append(f"{where} imports another plugin ({top}): build it by name through "
                               "the registry")
    assert not bad, "\n".join(bad)


def test_the_public_names_exist():
    for name in tokensmith.__all__:
        assert getattr(tokensmith, name) is not None, name
    if importlib.util.find_spec("hypothesis") is not None:
        for name in tokensmith.testing.__all__:
            assert getattr(tokensmith.testing, name) is not None, name


def test_no_no_op_init_for_the_factory_convention():
    pattern = re.compile(r"def __init__\(self, config[^)]*ctx[^)]*\)")
    hits = [f"{p.relative_to(ROOT)}:{i}" for folder in (*PLUGIN_DIRS, ROOT / "core", ROOT / "adapters",
                                                       ROOT / "registry", ROOT / "tokensmith")
            for p in _python_files(folder) for i, line in enumerate(p.read_text().splitlines(), 1)
            if pattern.search(line)]
    assert not hits, hits


def test_no_first_party_factory_is_a_from_config_adapter():
    hits = [f"{p.relative_to(ROOT)}" for folder in PLUGIN_DIRS for p in _python_files(folder)
            if "from_config\"" in p.read_text() or ".from_config\"," in p.read_text()]
    assert not hits, hits


def test_kind_table_hookspecs_and_public_api_agree():
    spec_hooks = {name for name in dir(hookspecs) if name.startswith("tokensmith_register_")}
    assert spec_hooks == {k.hook for k in KIND_TABLE}
    assert set(hookspecs.REGISTRATION_HOOKS) == spec_hooks
    for kind in KIND_TABLE:
        spec = getattr(hookspecs, kind.hook)
        assert kind.interface.__name__ in tokensmith.__all__, kind.interface
        assert kind.interface.__name__ in (spec.__doc__ or ""), f"{kind.hook} does not name its interface"
        for member in kind.members:
            assert hasattr(kind.interface, member), (kind.name, member)
    assert tokensmith.KINDS == KINDS


def test_docs_list_every_kind():
    hooks_md = (ROOT / "docs" / "hooks.md").read_text()
    authors = (ROOT / "docs" / "plugin-authors.md").read_text()
    for kind in KIND_TABLE:
        assert f"Kind `{kind.name}`" in hooks_md, kind.name
        assert f"| {kind.name} |" in authors or f"| {kind.name} " in authors, \
            f"docs/plugin-authors.md's table does not list kind {kind.name}"


def test_requirements_are_documented():
    hooks_md = (ROOT / "docs" / "hooks.md").read_text()
    for name in tokensmith.REQUIREMENTS:
        assert f'"{name}"' in hooks_md


def test_catalog_matches_the_installed_first_party_plugins(installed_registry):
    from tokensmith.registry.catalog import FIRST_PARTY

    folders = {f"tokensmith-{p.name}" for p in PLUGIN_DIRS if p.parent.name == "plugins"}
    assert set(FIRST_PARTY) == folders
    checked = 0
    for dist, kinds in FIRST_PARTY.items():
        installed = {(c.kind, c.name) for c in installed_registry.components() if c.distribution == dist}
        if not installed:
            continue
        checked += 1
        assert installed == {(k, n) for k, names in kinds.items() for n in names}, dist
    if checked == 0:
        pytest.skip("no first-party plugin is installed here")


def test_subprocesses_in_tests_run_outside_the_source_tree():
    """`python -c`/`-m` put the working directory first on sys.path; run from the repository
    root (as tox does), the source tree's tokensmith/ folder (without core/, registry/...)
    would shadow the installed package. Every such call must pass cwd=."""
    bad = []
    for folder in (ROOT / "tests", *(p / "tests" for p in PLUGIN_DIRS)):
        for path in _python_files(folder):
            text = path.read_text()
            for match in re.finditer(r"subprocess\.(?:run|Popen)\((.*?)\)\n", text, re.S):
                call = match.group(1)
                if ('"-c"' in call or '"-m"' in call or " -m " in call) and "cwd=" not in call:
                    line = text[:match.start()].count("\n") + 1
                    bad.append(f"{path.relative_to(ROOT)}:{line}")
    assert not bad, bad
