"""The one-off SmolLM2 probe behind the transplant benchmark's fine-tune defaults (README,
"Why the fine-tune hurt"): the TokenAdapt hybrid init only, then the same 40-step embedding
fine-tune (4 x 128 tokens, AdamW with warm-up, cosine, no weight decay) with other settings,
each from the same transplanted table, scored on the benchmark's held-out text.

TokenAdapt: Sharthak, Pahalwan, Kamath & Shirawalmath, arXiv 2505.09738.

Heavy (SmolLM2, ~15 minutes on a loaded 2-core CPU): ``OMP_NUM_THREADS=2 python finetune_probe.py``.
It prints its numbers (a probe, not a report); the benchmark is ``tokensmith bench transplant``.
"""

from __future__ import annotations

import copy
import time

from tokensmith_tokenadapt.benchmark import TransplantBenchmark, held_out_texts
from tokensmith_tokenadapt.finetune import fine_tune_embeddings, new_rows
from tokensmith_tokenadapt.heuristics import CachedEmbedder, make_embedder, plan_transplant
from tokensmith_tokenadapt.provider import TokenAdapt, transplant

from tokensmith import HFCausalLM, HFTokenizer, score_texts

LICENCE_BPE = "plugins/tokenadapt/results/licence-bpe-8k"
PHI_CACHE = "/work/artifacts/tokenadapt-phi"


def main() -> None:
    start = time.time()

    def log(*parts: object) -> None:
        print(f"[{time.time() - start:6.0f}s]", *parts, flush=True)

    bench = TransplantBenchmark()
    registry = bench.registry()
    licenses = registry.build("dataset", {"type": "licenses"})
    new = HFTokenizer.from_file(LICENCE_BPE)
    pipeline = bench.cpu_pipeline("smollm2", threads=2, seed=0)
    base, old, runtime = pipeline.model, pipeline.tokenizer, pipeline.runtime
    texts, _ = held_out_texts(licenses, old, 12_000)  # the benchmark's held-out: 36,546 bytes
    train = []
    for example in licenses.examples("train"):
        if len(train) >= 100:
            break
        if example["text"].strip():
            train.append({"text": example["text"]})
    plan = plan_transplant(old, new, CachedEmbedder(make_embedder("minilm"), PHI_CACHE))
    hybrid = copy.deepcopy(base)
    transplant(hybrid, old, new, TokenAdapt(mode="hybrid", embedder="minilm", seed=0), plan=plan)
    log("hybrid before", round(score_texts(HFCausalLM(hybrid, new, runtime), texts).bits_per_byte, 4))
    rows = new_rows(old, new)
    for name, lr, train_rows in (("lr 3e-4, new rows", 3e-4, rows), ("lr 3e-4, all rows", 3e-4, None),
                                 ("lr 1e-3, new rows", 1e-3, rows)):
        model = copy.deepcopy(hybrid)
        result = fine_tune_embeddings(model, new, train, steps=40, batch_size=4, max_length=128, lr=lr,
                                      warmup=4, schedule="cosine", weight_decay=0.0, rows=train_rows, seed=0,
                                      runtime=runtime, registry=registry)
        after = score_texts(HFCausalLM(model, new, runtime), texts).bits_per_byte
        log(name, "after", round(after, 4), "training loss first/last",
            [round(v, 3) for _, v in result.losses[:3]], [round(v, 3) for _, v in result.losses[-3:]])
        del model


if __name__ == "__main__":
    main()
