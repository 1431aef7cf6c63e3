"""The ln-free recipe through the core runner under torchrun: 2 CPU ranks (gloo) see different
batches, measure different σ̄, freeze the same one (their mean) at every removal, and end with
the same weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


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
    assert ranks[0]["events"] == ranks[1]["events"] and len(ranks[0]["events"]) == 7
    assert ranks[0]["sigma"] == ranks[1]["sigma"]
    assert all(mode == "fake" for mode, _, _ in ranks[0]["sigma"].values())
    differ = 0
    for step, target in ranks[0]["events"]:
        if target not in ranks[0]["sigma"]:
            continue  # a special-treatment event
        mine, theirs = (r["local"][str(step)][target] for r in ranks)
        differ += mine != theirs
        assert ranks[0]["sigma"][target][1] == pytest.approx((mine + theirs) / 2, rel=1e-6)
    assert differ >= 3  # the ranks measured their own batches
    digests = ranks[0]["ranks"]
    assert [r for r, _ in digests] == [0, 1] and digests[0][1] == digests[1][1]
