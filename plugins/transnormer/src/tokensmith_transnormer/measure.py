"""Time and peak tensor memory of attention forms, for the demo and the benchmark.

The baseline is causal softmax attention at equal width, two ways: materialised
(softmax(QKᵀ/√d + M)V, quadratic memory) and PyTorch's fused
``scaled_dot_product_attention`` (memory-efficient on CPU, quadratic time).
Lightning Attention (TransNormerLLM, arXiv 2307.14995, section 3.2) is linear
in both.

Time is the fastest of a few calls. Peak memory is the highest sum of live tensor
bytes the CPU allocator handed out during one call, read from ``torch.profiler`` memory events
(``profile_memory=True``); inputs allocated before the call do not count.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from .lightning_attention import decay_rates, lightning_attention


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention with the ``[n, n]`` score matrix materialised."""
    n = q.shape[2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    causal = torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(causal, float("-inf")).softmax(-1) @ v


def fused_softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_forms(heads: int, block_size: int) -> dict[str, Callable]:
    """name -> ``fn(q, k, v)`` for the forms compared (decay of a TransNormer's first layer)."""
    decay = torch.tensor(decay_rates(heads, 0, 2))

    def lightning(q, k, v):
        return lightning_attention(q, k, v, decay.to(q.dtype), block_size)[0]

    return {f"lightning (B={block_size})": lightning, "softmax (materialised)": softmax_attention,
            "softmax (fused SDPA)": fused_softmax_attention}


def random_qkv(n: int, width: int, heads: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(1, heads, n, width // heads, generator=g) for _ in range(3))


def best_seconds(fn: Callable[[], object], repeats: int = 3, budget_s: float | None = None) -> float:
    """The fastest of ``repeats`` calls after one warm-up: on a shared machine the minimum
    is the estimate least disturbed by other load. With ``budget_s``, fewer repeats (at
    least 2) when the warm-up call shows they would take longer than that."""
    start = time.perf_counter()
    fn()
    if budget_s is not None:
        repeats = max(2, min(repeats, int(budget_s / max(time.perf_counter() - start, 1e-9))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
    finally:
        os.unlink(path)
    deltas = sorted((e["args"]["Ev Idx"], e["args"]["Bytes"]) for e in events if e.get("name") == "[memory]")
    live = peak = 0
    for _, nbytes in deltas:
        live += nbytes
        peak = max(peak, live)
    return peak
