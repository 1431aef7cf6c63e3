"""`tokensmith train RECIPE.toml` as a user runs it: one process, then the same file under
`torchrun --nproc_per_node 2` (gloo on CPU). The recipe is examples/tiny-recipe.toml with its
dataset swapped for a tiny one that a plugin installed from a temporary folder provides."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import tomli_w

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
from tokensmith import Component, Dataset, hookimpl

TEXT = """The quick brown fox jumps over the lazy dog. A tokenizer turns text into tokens.
def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)
The capital of France is Paris. The capital of Italy is Rome.
Byte pair encoding merges the most frequent pair of symbols again and again."""


class TinyText(Dataset):
    name = "tiny-text"

    def examples(self, split="train"):
        lines = TEXT.splitlines()
        return iter({"text": line} for line in (lines if split == "train" else lines[:2]))


@hookimpl
def tokensmith_register_datasets():
    return [Component("tiny-text", TinyText, "five lines of text")]
'''


@pytest.fixture
def project(tmp_path):
    """A recipe file and an environment in which the tiny-text dataset is installed."""
    site = tmp_path / "site"
    info = site / "tiny_recipe_data-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "tiny_recipe_data.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-recipe-data\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tokensmith]\ntiny-recipe-data = tiny_recipe_data\n")
    recipe = tomllib.loads((ROOT / "examples" / "tiny-recipe.toml").read_text())
    recipe["dataset"] = {"type": "tiny-text", "eval_split": "eval"}
    recipe["train"].update(steps=4, batch_size=2, eval_at=[0], eval_every=0, save_every=2, warmup=1,
                           progress="plain")
    path = tmp_path / "recipe.toml"
    path.write_text(tomli_w.dumps(recipe))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "TOKENSMITH_LOAD_PLUGINS": "tiny-recipe-data", "OMP_NUM_THREADS": "1"}
    return path, env


def test_tokensmith_train_runs_resumes_and_explains_a_bad_recipe(project, tmp_path, make_registry,
                                                                  monkeypatch, capsys):
    """In this process (the console script's code path, without a second interpreter start)."""
    import tokensmith
    from tokensmith.cli import main

    plugin = types.ModuleType("tiny_recipe_data")
    exec(PLUGIN, plugin.__dict__)
    monkeypatch.setattr(tokensmith, "default_registry", lambda: make_registry(plugin))
    recipe, _ = project
    out = tmp_path / "out"
    assert main(["train", str(recipe), "--output-dir", str(out), "--max-steps", "2"]) == 0
    printed = capsys.readouterr()
    assert "trained 2 steps" in printed.out and f"model: {out / 'final'}" in printed.out
    assert "step 0: eval loss" in printed.err and "step 2/2: loss" in printed.err
    assert "\x1b[" not in printed.err  # plain progress off a terminal
    assert main(["train", str(recipe), "--output-dir", str(out), "--resume", "latest"]) == 0
    report = json.loads((out / "train.json").read_text())
    assert report["metrics"]["steps"] == 4 and report["series"][0]["x"] == [1.0, 2.0, 3.0, 4.0]
    assert any("resumed from" in note and "checkpoint-2" in note for note in report["notes"])
    capsys.readouterr()
    recipe.write_text(recipe.read_text().replace('type = "tiny-text"', 'type = "tiny-txt"'))
    assert main(["train", str(recipe), "--output-dir", str(tmp_path / "bad")]) == 2
    error = capsys.readouterr().err
    assert "dataset 'tiny-txt'" in error and "'tiny-text'" in error
    assert not (tmp_path / "bad").exists()


def test_the_same_recipe_runs_under_torchrun_on_two_ranks(project, tmp_path):
    recipe, env = project
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tokensmith", "train", str(recipe), "--output-dir", "out"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.count("trained 4 steps") == 1  # rank 0 reports
    report = json.loads((tmp_path / "out" / "train.json").read_text())
    assert report["metrics"]["world_size"] == 2 and report["provenance"]["runtime"]["world_size"] == 2
    ranks = next(t for t in report["tables"] if t["title"] == "ranks")["rows"]
    assert [r for r, _ in ranks] == [0, 1] and ranks[0][1] == ranks[1][1]  # identical final weights
    assert all(math.isfinite(v) for v in report["series"][0]["y"])
    out = tmp_path / "out"
    manifest = json.loads((out / "checkpoint-2" / "tokensmith-checkpoint.json").read_text())
    assert manifest["world_size"] == 2 and {"rng_state_0.pth", "rng_state_1.pth"} <= set(manifest["files"])
