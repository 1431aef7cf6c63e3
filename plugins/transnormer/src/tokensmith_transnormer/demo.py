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

from tokensmith import Demo, Report, Runtime, Series, Table, find_norm_layers, to_terminal

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

    def run(self, pipeline: Any, out: Any) -> Report:
        metrics: dict[str, Any] = {}
        architecture = TransNormerArchitecture(vocab_size=256, width=64, layers=2, heads=4, block_size=16,
                                               lrpe=True)
        model = architecture.build(Runtime(dtype="float64", seed=0))
        ids = torch.randint(0, 256, (1, 200), generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            logits = {form: model(ids, form=form)[0] for form in ("parallel", "blockwise", "recurrent")}
        scale = float(logits["parallel"].abs().max())
        for form in ("blockwise", "recurrent"):
            metrics[f"max_rel_diff_{form}_vs_parallel"] = \
                float((logits[form] - logits["parallel"]).abs().max()) / scale
        print("Tiny random TransNormer LM (float64, 2 layers, LRPE on, 200 tokens): the blockwise (B=16)",
              file=out)
        print("and recurrent forms give the parallel form's logits; its decoding state does not grow.",
              file=out)

        sizes = cache_sizes(pipeline.model)
        memory_rows, state_series, kv_series = [], [], []
        with torch.inference_mode():
            for n in LENGTHS:
                ids = torch.zeros(1, n, dtype=torch.long)
                _, state = model(ids, form="blockwise")
                _, state = model(ids[:, :1], form="recurrent", state=state)
                metrics[f"state_bytes_{n}"] = state.nbytes
                state_series.append(state.nbytes)
                if sizes is not None:
                    per_token, constant = sizes
                    metrics[f"pipeline_kv_cache_bytes_{n}"] = per_token * (n + 1)
                    kv_series.append(per_token * (n + 1))
                    memory_rows.append((n, state.nbytes, constant, per_token * (n + 1)))
                else:
                    memory_rows.append((n, state.nbytes, None, None))
        columns = ("n", "tiny TransNormer state", "TransNormer state, pipeline shape",
                   "softmax KV cache, pipeline model")
        tables = [Table("decoding memory after n tokens, bytes (tiny model: measured; the pipeline model's "
                        "shape: computed)", columns, tuple(memory_rows))]
        series = [Series("tiny TransNormer state", LENGTHS, tuple(state_series), x_label="tokens",
                         y_label="bytes", group="decoding memory", log_x=True, log_y=True)]
        if kv_series:
            series.append(Series("softmax KV cache (pipeline model)", LENGTHS, tuple(kv_series),
                                 x_label="tokens", y_label="bytes", group="decoding memory", log_x=True,
                                 log_y=True))

        forms = attention_forms(heads=4, block_size=256)
        timing_rows = []
        for n in TIMED_LENGTHS:
            q, k, v = random_qkv(n, 256, 4)
            times = {name: best_seconds(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v))
                     for name, fn in forms.items()}
            timing_rows.append((n, *(1000 * t for t in times.values())))
            metrics.update({f"seconds_{n}[{name}]": t for name, t in times.items()})
        tables.append(Table("one attention layer, width 256, 4 heads: ms, fastest of 3 calls",
                            ("n", *forms), tuple(timing_rows)))
        for j, name in enumerate(forms, start=1):
            series.append(Series(name, TIMED_LENGTHS, tuple(row[j] for row in timing_rows), x_label="tokens",
                                 y_label="ms", group="attention time"))

        layers, _ = find_norm_layers(pipeline.model)
        metrics["norm_layers_srmsnorm_would_replace"] = len(layers)
        report = Report(name=self.name, metrics=metrics, tables=tuple(tables), series=tuple(series),
                        notes=(f"normalization 'srmsnorm' would replace {len(layers)} norm layer(s) of the "
                               "pipeline's model (dropping their gains; try it on a copy: "
                               "provider.replace(model, inplace=False))",))
        to_terminal(report, out)
        return report
