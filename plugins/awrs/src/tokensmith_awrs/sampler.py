"""The AWRS token sampler and the full-masking baseline, one step each.

Lipkin et al., "Fast Controlled Generation from Language Models with Adaptive
Weighted Rejection Sampling", COLM 2025, arXiv 2504.05410 — the paper's
two-round algorithm (Sec. 3; ``experiments/sampler.py`` of the paper's code).

Given next-token weights ``w(x)`` (log-probabilities ``logw``; tokens known to
be invalid a priori are ``-inf``, which prunes them and shrinks ``Z``) and a
Boolean constraint ``c``:

* round 1 visits tokens in descending Gumbel-key order ``log p(x) + G_x``
  (sampling without replacement), removing each rejected token; the first
  accepted ``x*`` is an exact sample of ``p(x) c(x) / Z_c``;
* round 2 draws fresh keys over the support left after round 1 and counts the
  rejections ``N2`` before its first acceptance;
* the weight ``w_hat = Z (1 - m) / (N + 1)`` with ``m`` the probability mass
  rejected in round 1 and ``N = |R1| + N2`` is unbiased: ``E[w_hat] = Z_c``.

Masking (locally constrained decoding) evaluates ``c`` on every token and
samples the same ``p_c`` with the exact local weight ``Z_c``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import attrs


@attrs.frozen
class Step:
    """One sampled token (``None`` when every token was rejected: weight 0).

    AWRS fills ``rejected_round1``/``rejected_round2`` (``|R1|`` and ``N2``); masking
    fills ``disallowed`` (the candidates the constraint refused)."""

    token: int | None
    log_weight: float
    checks: int
    rejected_round1: int = 0
    rejected_round2: int = 0
    disallowed: int = 0


def _gumbel_keys(logp: Any, generator: Any) -> Any:
    """``log p + G`` in float32: only the order of the keys matters, and float32
    halves the cost of the one pass over the vocabulary per round."""
    import torch

    u = torch.rand(logp.shape, generator=generator, dtype=torch.float32).clamp_(min=1e-38)
    return logp.to(torch.float32) - torch.log(-torch.log(u))


def descending(keys: Any, first: int = 16) -> Iterator[int]:
    """Indices of the finite ``keys`` from largest to smallest, found lazily with
    ``topk`` on growing chunks (AWRS usually stops after a few)."""
    import torch

    n = int(torch.isfinite(keys).sum())
    done, k = 0, first
    while done < n:
        k = min(k, n)
        yield from torch.topk(keys, k).indices[done:].tolist()
        done, k = k, k * 16


def awrs_step(logw: Any, check: Callable[[int], bool], generator: Any) -> Step:
    """The two-round AWRS step with its unbiased weight estimator."""
    import torch

    logw = logw.to(torch.float64)
    log_z = float(torch.logsumexp(logw, 0))
    if log_z == -math.inf:
        return Step(None, -math.inf, 0)
    logp = logw - log_z
    checks, rejected, star = 0, [], None
    for x in descending(_gumbel_keys(logp, generator)):
        checks += 1
        if check(x):
            star = x
            break
        rejected.append(x)
    if star is None:
        return Step(None, -math.inf, checks, len(rejected))
    remaining = logp.clone()
    if rejected:
        remaining[torch.tensor(rejected)] = -math.inf
    log_kept = float(torch.logsumexp(remaining, 0))  # log(1 - m), without cancellation
    n2 = 0
    for x in descending(_gumbel_keys(remaining, generator)):
        if x == star:
            break
        checks += 1
        if check(x):
            break
        n2 += 1
    n = len(rejected) + n2
    return Step(star, log_z + log_kept - math.log(n + 1), checks, len(rejected), n2)


def masking_step(logw: Any, check: Callable[[int], bool], generator: Any) -> Step:
    """Locally constrained decoding: ``c`` on every token with ``w(x) > 0``, then an
    exact draw from ``p_c``; the weight is the exact ``Z_c``."""
    import torch

    logw = logw.to(torch.float64)
    candidates = torch.nonzero(torch.isfinite(logw)).flatten().tolist()
    allowed = [x for x in candidates if check(x)]
    if not allowed:
        return Step(None, -math.inf, len(candidates), disallowed=len(candidates))
    masked = torch.full_like(logw, -math.inf)
    index = torch.tensor(allowed)
    masked[index] = logw[index]
    log_zc = float(torch.logsumexp(masked, 0))
    token = int(torch.multinomial(torch.exp(masked - log_zc), 1, generator=generator))
    return Step(token, log_zc, len(candidates), disallowed=len(candidates) - len(allowed))


SAMPLERS = {"awrs": awrs_step, "masking": masking_step}
