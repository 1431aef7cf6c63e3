"""docs/plugin-authors.md is a tutorial a new author follows end to end: its files are
written out exactly as shown, installed as a distribution (dist-info with its entry point),
and its own tests and snippets run — a third-party plugin written from the docs alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "plugin-authors.md"
BLOCK = re.compile(r"```(python|toml)\n(.*?)```", re.S)
HEADER = re.compile(r"^# ([\w./-]+\.(?:py|toml))( \(continued\))?\n")


def tutorial_blocks() -> tuple[dict[str, str], list[str]]:
    """``(files, snippets)``: blocks whose first line names a file, joined per file in
    order, and the other Python blocks."""
    files: dict[str, str] = {}
    snippets: list[str] = []
    for lang, body in BLOCK.findall(TUTORIAL.read_text()):
        head = HEADER.match(body)
        if head:
            path = head.group(1)
            files[path] = files.get(path, "") + ("\n\n" if path in files else "") + body[head.end():]
        elif lang == "python":
            snippets.append(body)
    return files, snippets


def test_the_tutorial_names_every_file_it_lists():
    files, _ = tutorial_blocks()
    assert {"pyproject.toml", "src/tokensmith_tutorial/components.py", "src/tokensmith_tutorial/plugin.py",
            "src/tokensmith_tutorial/scale_norm.py", "tests/test_tutorial.py"} <= set(files)


def test_the_tutorial_plugin_is_shorter_than_the_old_template():
    """The contract before this one needed 81 lines of components + plugin for two components
    (a stage and a constraint); the tutorial's decoder, constraint and stage with their
    registrations must take fewer per component."""
    files, _ = tutorial_blocks()
    code = files["src/tokensmith_tutorial/components.py"] + files["src/tokensmith_tutorial/plugin.py"]
    lines = [line for line in code.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) / 4 < 81 / 2, len(lines)
    assert "__init__" not in files["src/tokensmith_tutorial/components.py"]
    assert "from_config" not in code and "config_class" not in code


def test_a_plugin_written_from_the_tutorial_installs_and_passes_its_tests(tmp_path):
    pytest.importorskip("hypothesis")
    files, snippets = tutorial_blocks()
    project = tmp_path / "tokensmith-tutorial"
    for path, text in files.items():
        target = project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (project / "src" / "tokensmith_tutorial" / "__init__.py").write_text("")
    meta = tomllib.loads(files["pyproject.toml"])["project"]
    site = tmp_path / "site"
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: {meta['version']}\n")
    entry = "\n".join(f"{k} = {v}" for k, v in meta["entry-points"]["tokensmith"].items())
    (info / "entry_points.txt").write_text(f"[tokensmith]\n{entry}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(project / "src")]),
           "TOKENSMITH_LOAD_PLUGINS": meta["name"]}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
    for snippet in snippets:
        run = subprocess.run([sys.executable, "-c", snippet], cwd=project, env=env, capture_output=True,
                             text=True, timeout=600)
        assert run.returncode == 0, snippet + run.stderr[-3000:]
