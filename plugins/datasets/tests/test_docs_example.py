"""docs/datasets.md's Python example runs as written (offline), and its table lists every
dataset this plugin registers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tokensmith import Registry
from tokensmith.testing import no_network

DOC = Path(__file__).resolve().parents[3] / "docs" / "datasets.md"


@pytest.fixture(scope="module")
def doc():
    if not DOC.exists():
        pytest.skip("docs/datasets.md is not beside this plugin (installed elsewhere)")
    return DOC.read_text()


def test_the_example_runs_offline(doc, capsys):
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert blocks
    with no_network():
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), {})
    assert len(capsys.readouterr().out.splitlines()) == 4  # three files, then the fields


def test_the_table_lists_every_registered_dataset(doc):
    table = doc.split("## The datasets", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M))
    registered = {c.name for c in Registry.from_environment().components()
                  if c.distribution == "tokensmith-datasets"}
    assert listed == registered
