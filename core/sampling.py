"""The temperature / top-k / nucleus (top-p) filter shared by sampling decoders: token-level
and byte-level decoders use the same code."""

from __future__ import annotations

from typing import Any


def filtered_probs(logprobs: Any, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Any:
    """Temperature, then top-k, then nucleus (top-p) filtering of a 1-D log-distribution;
    returns probabilities (float64) summing to 1. ``top_p`` keeps the smallest set of most
    probable entries whose mass reaches it."""
    import torch

    scores = logprobs.double() / temperature
    if top_k and top_k < scores.numel():
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        drop = (sorted_p.cumsum(0) - sorted_p) >= top_p
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p.masked_fill(drop, 0.0))
        probs = probs / probs.sum()
    return probs
