"""Overhead of a tokensmith pipeline vs transformers, on SmolLM2 (greedy decoding).

Each side runs in its own fresh process (so peak resident memory is comparable):
load SmolLM2 from the converted safetensors cache, warm up, then greedy-decode
the same prompt to the same number of tokens, ``repeats`` times. The sides are
interleaved and the median tokens/s is taken. Reported: tokens/s ratio
(pipeline / transformers; target >= 0.95), peak RSS ratio (target <= 1.1: the
pipeline must not copy the model) and whether both produced identical tokens.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "The history of the printing press begins"


def _worker(side: str, n_tokens: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from tokensmith import PipelineSpec, Registry

    reg = Registry.from_environment()
    pipe = reg.build_pipeline(PipelineSpec(model={"source": "smollm2", "progress": False},
                                           decoder="greedy", runtime={"device": "cpu", "dtype": "fp32"}))
    ids = list(pipe.lm.start_ids) + list(pipe.tokenizer.encode(PROMPT).ids)
    if side == "transformers":
        model = pipe.model
        x = torch.tensor([ids])

        def run():
            with torch.inference_mode():
                out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                                     max_new_tokens=n_tokens, min_new_tokens=n_tokens,
                                     pad_token_id=pipe.tokenizer.eos_id)
            return out[0, len(ids):].tolist()
    else:
        def run():
            return list(pipe.generate(PROMPT, max_new_tokens=n_tokens).ids)

    run()  # warm-up
    rates, tokens = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        tokens = run()
        rates.append(len(tokens) / (time.perf_counter() - start))
    return {"side": side, "tokens_per_s": rates, "tokens": tokens,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spawn(side: str, n_tokens: int, repeats: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", side, str(n_tokens), str(repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(out_dir: Path, quick: bool) -> dict:
    n_tokens, rounds = (16, 1) if quick else (64, 3)
    runs = {"transformers": [], "pipeline": []}
    for _ in range(rounds):
        for side in ("transformers", "pipeline"):
            runs[side].append(_spawn(side, n_tokens, repeats=2))
    med = {s: statistics.median(r for run in runs[s] for r in run["tokens_per_s"]) for s in runs}
    rss = {s: statistics.median(run["peak_rss_mb"] for run in runs[s]) for s in runs}
    same = runs["pipeline"][0]["tokens"] == runs["transformers"][0]["tokens"]
    result = {
        "model": "SmolLM2-135M-Instruct (fp32, CPU)", "prompt": PROMPT, "new_tokens": n_tokens,
        "threads": int(os.environ.get("BENCH_THREADS", "2")),
        "tokens_per_s": med, "peak_rss_mb": rss,
        "tokens_per_s_ratio": med["pipeline"] / med["transformers"],
        "peak_rss_ratio": rss["pipeline"] / rss["transformers"],
        "same_tokens": same, "targets": {"tokens_per_s_ratio": ">= 0.95", "peak_rss_ratio": "<= 1.1"},
        "raw": runs,
    }
    (out_dir / "overhead.json").write_text(json.dumps(result, indent=2))
    _plot(result, out_dir / "overhead.png")
    return {k: result[k] for k in ("tokens_per_s_ratio", "peak_rss_ratio", "same_tokens")}


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    sides = ["transformers", "pipeline"]
    axes[0].bar(sides, [result["tokens_per_s"][s] for s in sides], color=["#888", "#2a7"])
    axes[0].set_title(f"greedy tokens/s (ratio {result['tokens_per_s_ratio']:.3f})")
    axes[1].bar(sides, [result["peak_rss_mb"][s] for s in sides], color=["#888", "#2a7"])
    axes[1].set_title(f"peak RSS MB (ratio {result['peak_rss_ratio']:.3f})")
    fig.suptitle(f"SmolLM2 greedy, {result['new_tokens']} tokens, {result['threads']} threads; "
                 f"same tokens: {result['same_tokens']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--worker":
    print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
