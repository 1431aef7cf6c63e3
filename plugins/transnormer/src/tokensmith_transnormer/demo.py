"""`tokensmith demo` section: TransNormer's three attention forms agree, its recurrent
state stays the same size while a softmax model's KV cache grows, and Lightning
Attention's time against softmax attention (TransNormerLLM, arXiv 2307.14995).

SmolLM2 cannot be converted to linear attention, so the demo builds a tiny
random TransNormer LM; the pipeline's model is only read (its KV-cache size per
token and its norm layers), never modified.
"""

from __future__ import annotations

from typing import Any

import torch

from tokensmith import Demo, Runtime, find_norm_layers

from .measure import attention_forms, best_seconds, random_qkv
from .model import TransNormerArchitecture

LENGTHS = (16, 256, 2048)
TIMED_LENGTHS = (1024, 4096)


def cache_sizes(model: Any) -> tuple[int, int] | None:
    """For a softmax model: (bytes its KV cache grows by per token, bytes of the constant
    state a TransNormer of the same shape would keep: layers x heads x d_head² values)."""
    cfg = getattr(model, "config", None)
    layers = getattr(cfg, "num_hidden_layers", None)
    heads = getattr(cfg, "num_attention_heads", None)
    if layers is None or heads is None:
        return None
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    itemsize = next(model.parameters()).dtype.itemsize
    return 2 * layers * kv_heads * head_dim * itemsize, layers * heads * head_dim**2 * itemsize


class TransNormerDemo(Demo):
    name = "transnormer"

    def run(self, pipeline: Any, out: Any) -> dict[str, Any]:
        results: dict[str, Any] = {}
        architecture = TransNormerArchitecture(vocab_size=256, width=64, layers=2, heads=4, block_size=16,
                                               lrpe=True)
        model = architecture.build(Runtime(dtype="float64", seed=0))
        ids = torch.randint(0, 256, (1, 200), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            logits = {form: model(ids, form=form)[0] for form in ("parallel", "blockwise", "recurrent")}
        scale = float(logits["parallel"].abs().max())
        for form in ("blockwise", "recurrent"):
            rel = float((logits[form] - logits["parallel"]).abs().max()) / scale
            results[f"max_rel_diff_{form}_vs_parallel"] = rel
        print("Tiny random TransNormer LM (float64, 2 layers, LRPE on, 200 tokens):", file=out)
        print(f"  blockwise (B=16) vs parallel: max rel. logit diff "
              f"{results['max_rel_diff_blockwise_vs_parallel']:.1e}", file=out)
        print(f"  recurrent        vs parallel: max rel. logit diff "
              f"{results['max_rel_diff_recurrent_vs_parallel']:.1e}", file=out)

        sizes = cache_sizes(pipeline.model)
        print("\nDecoding memory after n tokens (tiny model: measured; pipeline model's shape: computed):",
              file=out)
        with torch.inference_mode():
            for n in LENGTHS:
                ids = torch.zeros(1, n, dtype=torch.long)
                _, state = model(ids, form="blockwise")
                _, state = model(ids[:, :1], form="recurrent", state=state)
                results[f"state_bytes_{n}"] = state.nbytes
                line = f"  n={n:>5}: tiny TransNormer state {state.nbytes / 1024:5.1f} KiB"
                if sizes is not None:
                    per_token, constant = sizes
                    results[f"pipeline_kv_cache_bytes_{n}"] = per_token * (n + 1)
                    kv_cache = per_token * (n + 1) / 2**20
                    line += (f" | same shape as the pipeline model: TransNormer state "
                             f"{constant / 2**20:.1f} MiB, softmax KV cache {kv_cache:6.1f} MiB")
                print(line, file=out)

        print("\nOne attention layer, width 256, 4 heads (fastest of 3 calls):", file=out)
        forms = attention_forms(heads=4, block_size=256)
        for n in TIMED_LENGTHS:
            q, k, v = random_qkv(n, 256, 4)
            times = {name: best_seconds(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v))
                     for name, fn in forms.items()}
            results[f"seconds_{n}"] = times
            print(f"  n={n:>5}: " + ", ".join(f"{name} {t * 1000:.0f} ms" for name, t in times.items()),
                  file=out)

        layers, _ = find_norm_layers(pipeline.model)
        results["norm_layers_srmsnorm_would_replace"] = len(layers)
        print(f"\nnormalization 'srmsnorm' would replace {len(layers)} norm layer(s) of the pipeline's "
              f"model (dropping their gains; try it on a copy: provider.replace(model, inplace=False)).",
              file=out)
        return results
