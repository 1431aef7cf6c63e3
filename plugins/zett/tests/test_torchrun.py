"""The zett recipe file in examples/ under ``torchrun --nproc_per_node 2 -m tokensmith train``
(gloo on CPU), exactly as a user with GPUs runs it (with NCCL): 2 ranks train one hypernetwork
(identical weights on both), rank 0 saves it as a verified artifact bound to the base tokenizer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tokensmith

RECIPE = Path(__file__).parents[1] / "examples" / "zett-tiny.toml"


def test_two_ranks_train_one_hypernetwork(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tokensmith", "train", str(RECIPE), "--output-dir", str(tmp_path / "run")]
    # cwd: outside the repository, whose source folder tokensmith/ would shadow the installed package
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "train.json").read_text())
    ranks = next(t for t in report["tables"] if t["title"] == "ranks")["rows"]
    assert [r[0] for r in ranks] == [0, 1] and ranks[0][1] == ranks[1][1]  # DDP: the same weights
    tensors, meta = tokensmith.load_artifact(tmp_path / "run" / "hypernetwork.safetensors",
                                             plugin="tokensmith-zett")
    assert meta["config"]["steps"] == 6 and meta["config"]["recipe"]["identity_steps"] == 3
    assert "encoder.layers.0.self_attn.in_proj_weight" in tensors
