"""Run under torchrun by test_ddp.py: the ln-free recipe on the core runner, a tiny GPT-2 on
2 CPU ranks (gloo). Each rank writes what it froze, and the σ̄ of the live norms it measured
itself after every step (recorded before the recipe averages them over the ranks)."""

import json
import sys
from pathlib import Path

import torch
from tokensmith_ln_free import fake_norms
from tokensmith_ln_free.finetune import LNFreeRecipe, finetune
from transformers import TrainerCallback

from tokensmith import Runtime
from tokensmith.testing import TINY_CORPUS, tiny_gpt2, tiny_tokenizer


class LocalSigma(TrainerCallback):
    """This rank's σ̄ of every live norm after each step (user callbacks run before the recipe's)."""

    def __init__(self, model):
        self.model, self.seen = model, {}

    def on_step_end(self, args, state, control, **kwargs):
        self.seen[state.global_step] = {p: n.average_std.item() for p, n in fake_norms(self.model).items()
                                        if n.mode == "live"}


torch.set_num_threads(1)
out = Path(sys.argv[1])
runtime = Runtime.parse(device="cpu", dtype="float32")
tok = tiny_tokenizer()
model, _ = tiny_gpt2(tok)
ids = tok.encode(TINY_CORPUS * 2).ids
examples = [{"input_ids": ids[i:i + 16]} for i in range(0, len(ids) - 16, 16)]
recipe = LNFreeRecipe(start=1, gap=1)
local = LocalSigma(model)
result = finetune(model, examples, steps=9, warmup=1, recipe=recipe, tokenizer=tok, runtime=runtime,
                  callbacks=[local], output_dir=out / "run", batch_size=2, progress="off", save_final=False)
ranks = next(t for t in result.report.tables if t.title == "ranks").rows
sigma = {p: [n.mode, n.average_std.item(), n.special_std.item()] for p, n in fake_norms(model).items()}
record = {"rank": runtime.rank, "world_size": result.world_size,
          "events": [[e.step, e.target] for e in recipe.applied], "sigma": sigma,
          "local": local.seen, "ranks": [list(r) for r in ranks]}
(out / f"rank{runtime.rank}.json").write_text(json.dumps(record))
