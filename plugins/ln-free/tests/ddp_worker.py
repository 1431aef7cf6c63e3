"""Run under torchrun by test_ddp.py: LN-free fine-tuning of a tiny GPT-2 on 2 CPU ranks (gloo)."""

import json
import sys

import torch
from tokensmith_ln_free import LNFreeNormalization, fake_norms
from tokensmith_ln_free.finetune import FinetuneConfig, finetune
from tokensmith_ln_free.schedule import removal_schedule

from tokensmith import Runtime
from tokensmith.testing import TINY_CORPUS, tiny_gpt2, tiny_tokenizer

torch.set_num_threads(1)
runtime = Runtime.parse(device="cpu", dtype="float32")
tok = tiny_tokenizer()
model, _ = tiny_gpt2(tok)
provider = LNFreeNormalization()
provider.tokenizer = tok
provider.replace(model)
ids = tok.encode(TINY_CORPUS * 2).ids
batches = [torch.tensor([ids[i:i + 16], ids[i + 16:i + 32]]) for i in range(0, len(ids) - 32, 32)]
events = removal_schedule(fake_norms(model), start=1, gap=1)
finetune(model, batches, FinetuneConfig(steps=len(events) + 2, warmup=1), schedule=events, runtime=runtime)
result = {"rank": runtime.rank, "world_size": runtime.world_size,
          "sigma": {p: [n.mode, n.average_std.item(), n.special_std.item()]
                    for p, n in fake_norms(model).items()},
          "checksum": sum(float(p.double().sum()) for p in model.parameters())}
with open(f"{sys.argv[1]}/rank{runtime.rank}.json", "w") as fh:
    json.dump(result, fh)
