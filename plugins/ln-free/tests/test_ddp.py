"""The recipe under torchrun: 2 CPU ranks agree on σ̄ at every removal and on the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_ranks_remove_the_same_norms(tmp_path):
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(worker), str(tmp_path)]
    # cwd: outside the repository, whose source folder tokensmith/ would shadow the installed package
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["sigma"] == ranks[1]["sigma"]
    assert all(mode == "fake" for mode, _, _ in ranks[0]["sigma"].values())
    assert abs(ranks[0]["checksum"] - ranks[1]["checksum"]) < 1e-6
