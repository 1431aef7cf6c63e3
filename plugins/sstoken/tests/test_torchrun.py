"""The sstoken recipe file in examples/ under ``torchrun --nproc_per_node 2 -m tokensmith train``
(gloo on CPU), exactly as a user with GPUs runs it (with NCCL): 2 ranks train with ssToken's
mask and an EMA history model; the ranks end with the same weights, and the checkpoint holds the
EMA history rank 0 saved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tokensmith

RECIPE = Path(__file__).parents[1] / "examples" / "sstoken-tiny.toml"


def test_two_ranks_train_with_the_sstoken_mask_and_an_ema_history(tmp_path):
    try:  # the recipe's data: licence names (licensedcode-data)
        dataset = tokensmith.default_registry().build("dataset", {"type": "licenses", "limit": 1})
        next(dataset.examples("train"))
    except tokensmith.DataUnavailableError as exc:
        pytest.skip(f"the licenses dataset is not installed: {exc}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tokensmith", "train", str(RECIPE), "--output-dir", str(tmp_path / "run")]
    # cwd: outside the repository, whose source folder tokensmith/ would shadow the installed package
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "train.json").read_text())
    assert report["metrics"]["world_size"] == 2 and report["metrics"]["steps"] == 2
    ranks = next(t for t in report["tables"] if t["title"] == "ranks")["rows"]
    assert [r[0] for r in ranks] == [0, 1] and ranks[0][1] == ranks[1][1]  # DDP: the same weights
    history = tmp_path / "run" / "checkpoint-2" / "sstoken" / "history.safetensors"
    tensors, meta = tokensmith.load_artifact(history, plugin="tokensmith-sstoken")
    assert meta["config"]["step"] == 2 and meta["config"]["ema_decay"] == [0.9]
    assert "0.model.embed_tokens.weight" in tensors
