"""Overhead of a tokensmith pipeline vs transformers, on SmolLM2 (greedy decoding).

Each side runs in its own fresh process (so peak resident memory is comparable):
load SmolLM2 from the converted safetensors cache, warm up, then greedy-decode
the same prompt to the same number of tokens, ``repeats`` times. The sides are
interleaved and the median tokens/s is taken. Reported: tokens/s ratio
(pipeline / transformers; target >= 0.95), peak RSS ratio (target <= 1.1: the
pipeline must not copy the model) and whether both produced identical tokens, as a
``tokensmith.Report`` (bench/run.py writes it with ``write_all``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "The history of the printing press begins"


def _worker(side: str, n_tokens: int, repeats: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    from tokensmith import PipelineSpec, Registry, peak_rss_bytes

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
            "peak_rss_mb": peak_rss_bytes() / 2**20}


def _spawn(side: str, n_tokens: int, repeats: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", side, str(n_tokens), str(repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(quick: bool) -> dict:
    """Every number of the comparison as one JSON-like mapping (see :func:`to_report`)."""
    n_tokens, rounds = (16, 1) if quick else (64, 3)
    runs = {"transformers": [], "pipeline": []}
    for _ in range(rounds):
        for side in ("transformers", "pipeline"):
            runs[side].append(_spawn(side, n_tokens, repeats=2))
    med = {s: statistics.median(r for run in runs[s] for r in run["tokens_per_s"]) for s in runs}
    rss = {s: statistics.median(run["peak_rss_mb"] for run in runs[s]) for s in runs}
    return {"model": "SmolLM2-135M-Instruct (fp32, CPU)", "prompt": PROMPT, "new_tokens": n_tokens,
            "threads": int(os.environ.get("BENCH_THREADS", "2")), "tokens_per_s": med, "peak_rss_mb": rss,
            "same_tokens": runs["pipeline"][0]["tokens"] == runs["transformers"][0]["tokens"], "raw": runs}


def to_report(result: dict, provenance=None):
    """The comparison as a Report: the two ratios and whether the tokens agree as metrics, the
    medians and every run as tables, bars of both."""
    from tokensmith import Provenance, Report, Series, Table, ratio

    sides = ("transformers", "pipeline")
    med, rss, runs = result["tokens_per_s"], result["peak_rss_mb"], result["raw"]
    return Report(
        name="overhead",
        metrics={"tokens_per_s_ratio": ratio(med["pipeline"], med["transformers"]),
                 "peak_rss_ratio": ratio(rss["pipeline"], rss["transformers"]),
                 "same_tokens": int(result["same_tokens"]), "new_tokens": result["new_tokens"]},
        tables=(Table("median over runs", ("side", "tokens/s", "peak RSS (MB)"),
                      tuple((s, med[s], rss[s]) for s in sides)),
                Table("every run (a fresh process each)", ("side", "round", "tokens/s (each timed call)",
                                                           "peak RSS (MB)"),
                      tuple((s, i, ", ".join(f"{r:.3f}" for r in run["tokens_per_s"]), run["peak_rss_mb"])
                            for s in sides for i, run in enumerate(runs[s])))),
        series=(Series("greedy tokens/s", sides, tuple(med[s] for s in sides), plot="bar",
                       y_label="tokens/s (median)"),
                Series("peak RSS MB", sides, tuple(rss[s] for s in sides), plot="bar",
                       y_label="MB (median)")),
        notes=(f"{result['model']}, greedy, prompt {result['prompt']!r}, {result['threads']} threads, "
               f"{len(runs['pipeline'])} round(s) of {len(runs['pipeline'][0]['tokens_per_s'])} timed runs "
               "per side after a warm-up",
               "targets: tokens/s ratio >= 0.95, peak RSS ratio <= 1.1 (the pipeline must not copy the "
               "model)",
               "same_tokens is 1 when both sides produced identical tokens"),
        provenance=provenance or Provenance.collect(model="smollm2", runtime={
            "device": "cpu", "dtype": "float32", "threads": result["threads"]}))


def main(out_dir: Path, quick: bool):
    return to_report(measure(quick))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--worker":
    print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
