"""The AWRS token sampler (three estimators of the weight) and the full-masking baseline.

Lipkin et al., "Fast Controlled Generation from Language Models with Adaptive
Weighted Rejection Sampling", COLM 2025, arXiv 2504.05410.

Given next-token weights ``w(x)`` (log-probabilities ``logw``; tokens known to
be invalid a priori are ``-inf``, which prunes them and shrinks ``Z``) and a
Boolean constraint ``c``, every variant visits tokens in descending Gumbel-key
order ``log p(x) + G_x`` (sampling without replacement), removing each rejected
token, and returns the first accepted ``x*``: an exact sample of
``p(x) c(x) / Z_c``. They differ in how they estimate ``Z_c`` (each estimate is
unbiased, and properly weighted jointly with ``x*``: ``E[w_hat f(x*)] = sum_x
p(x) c(x) f(x)``):

* ``two-round`` — the paper's algorithm (Sec. 3; ``experiments/sampler.py`` of the
  paper's code): a second round with fresh keys over the support left counts its
  rejections ``N2`` before its first acceptance, and ``w_hat = Z (1 - m) / (N + 1)``
  with ``m`` the mass rejected in round 1 and ``N = |R1| + N2``. Round 2 repeats
  much of round 1's work when little mass is accepted.
* ``recursive`` — one pass, from ``E[f(X)] = p(x) f(x) + (1 - p(x)) E[f(X) | X != x]``
  applied at every visited token: a rejected token multiplies the estimate by
  ``1 - q`` (``q`` its probability among the tokens not yet visited, the factors
  telescoping to ``1 - m``), and at ``x*`` one more token ``y`` (the next in the same
  order, a draw from the rest) estimates the tail: ``w_hat = Z (1 - m)`` when
  ``c(y)``, else ``Z p(x*)``. Cost: ``|R1| + 2`` checks.
* ``geometric`` — simulates sampling *with* replacement until ``max_accepts``
  accepts from without-replacement walks: before each visited token, the draws that
  would have fallen on already-rejected tokens are added as a Geometric(1 - m)
  count of "phantom" rejections (known rejected, never checked), and a walk ends at
  an accept (each round starts from fresh keys; accepted tokens are cached, not
  re-checked). With ``A = max_accepts`` accepts and ``n`` rejections (phantoms
  included) the unbiased negative-binomial estimate is ``w_hat = Z (A - 1) / (A + n - 1)``.
  On a peaked step (``max p >= 2/3``) it needs fewer than 2 checks on average.
* ``auto`` — the rule of genlm-control's current sampler: ``geometric`` when
  ``max p >= 2/3`` (or ``max_accepts > 2``), else ``recursive``.

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

    AWRS fills ``rejected_round1`` (distinct tokens rejected before ``x*``) and
    ``rejected_round2`` (distinct tokens rejected after it: ``N2`` of the two-round
    variant, the tail token of the recursive one, later walks of the geometric one);
    masking fills ``disallowed`` (the candidates the constraint refused)."""

    token: int | None
    log_weight: float
    checks: int
    rejected_round1: int = 0
    rejected_round2: int = 0
    disallowed: int = 0
    #: tokens dropped without a check because a rejected token showed them rejected too
    #: (prefix closure: they extend its dead byte prefix; ``recursive``/``geometric`` only)
    implied: int = 0


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


def _start(logw: Any) -> tuple[Any, float] | None:
    import torch

    logw = logw.to(torch.float64)
    log_z = float(torch.logsumexp(logw, 0))
    return None if log_z == -math.inf else (logw - log_z, log_z)


def _log_kept(logp: Any, rejected: list[int], dropped: Any = None) -> float:
    """``log(1 - m)`` for the mass ``m`` of the rejected tokens (and of the ``dropped`` mask),
    summed over what is kept (no cancellation when ``m`` is close to 1)."""
    import torch

    if not rejected:
        return 0.0
    kept = logp.clone()
    kept[torch.tensor(rejected)] = -math.inf
    if dropped is not None:
        kept[dropped] = -math.inf
    return float(torch.logsumexp(kept, 0))


class _Implied:
    """Tokens known to be rejected without a check: after ``check(x)`` is False, a check with
    an ``implied(x)`` attribute names every token rejected with ``x`` (the constraint is
    prefix-closed: tokens extending ``x``'s dead byte prefix). Removing them from the walk is
    removing tokens with ``c = 0``: the sampler still draws exactly from ``p c / Z_c``, and
    their mass joins the rejected mass ``m`` of the estimators."""

    def __init__(self, logp: Any, implied: Callable[[int], Any]) -> None:
        import torch

        self.implied = implied
        self.mask = torch.zeros(logp.shape, dtype=torch.bool)
        self.finite = torch.isfinite(logp)
        self.known: set[int] = set()

    def add(self, x: int) -> Any:
        """Record the tokens rejected with the rejected ``x`` (``x`` included); returns the ids
        not known before (a tensor) with a finite probability."""
        import torch

        ids = self.implied(x)
        ids = torch.tensor([x]) if ids is None else torch.cat([torch.as_tensor(ids, dtype=torch.long),
                                                              torch.tensor([x])])
        ids = torch.unique(ids[~self.mask[ids] & self.finite[ids]])
        self.mask[ids] = True
        self.known.update(ids.tolist())
        return ids

    def count(self, checked: list[int]) -> int:
        return len(self.known.difference(checked))


def recursive_step(logw: Any, check: Callable[[int], bool], generator: Any) -> Step:
    """Recursive AWRS: one pass, ``w_hat = Z (1 - m)`` or ``Z p(x*)`` (see the module). With a
    check that names the tokens rejected with a rejected one (``check.implied``), those are
    skipped unchecked and their mass joins ``m``; given the walk up to ``x*``, the tail
    estimate's expectation is still the allowed share of what is left, so ``E[w_hat | walk] =
    Z_c`` and the weight stays properly weighted (the proof is the module's, with the skipped
    tokens' ``c = 0``)."""
    start = _start(logw)
    if start is None:
        return Step(None, -math.inf, 0)
    logp, log_z = start
    hint = getattr(check, "implied", None)
    implied = _Implied(logp, hint) if hint is not None else None
    known = implied.known if implied is not None else frozenset()
    order = (x for x in descending(_gumbel_keys(logp, generator)) if x not in known)
    checks, rejected, star = 0, [], None
    for x in order:
        checks += 1
        if check(x):
            star = x
            break
        rejected.append(x)
        if implied is not None:
            implied.add(x)
    skipped = implied.count(rejected) if implied is not None else 0
    if star is None:
        return Step(None, -math.inf, checks, len(rejected), implied=skipped)
    log_kept = _log_kept(logp, rejected, implied.mask if implied is not None else None)
    following = next(order, None)  # the next token of the same walk, skipped ones left out
    if following is None:  # x* is all the mass left: q = 1, the tail estimate is exact
        return Step(star, log_z + log_kept, checks, len(rejected), implied=skipped)
    checks += 1
    if check(following):
        return Step(star, log_z + log_kept, checks, len(rejected), implied=skipped)
    # q = p(x*) / (1 - m): Z (1 - m) q = Z p(x*)
    return Step(star, log_z + float(logp[star]), checks, len(rejected), 1, implied=skipped)


def _phantoms(log_m: float, generator: Any) -> float:
    """Draws of a with-replacement sampler that fall on the rejected mass ``m`` before one
    falls outside it: Geometric(1 - m) failures, ``P(K >= k) = m^k``, by inversion."""
    import torch

    if log_m == -math.inf:
        return 0.0
    u = float(torch.rand((), generator=generator, dtype=torch.float64).clamp_(min=1e-300))
    return math.floor(math.log(u) / log_m) if log_m < 0 else math.inf


def geometric_step(logw: Any, check: Callable[[int], bool], generator: Any, max_accepts: int = 2) -> Step:
    """Geometric AWRS: with-replacement counts rebuilt from without-replacement walks (see
    the module); ``w_hat = Z (A - 1) / (A + n - 1)``."""
    import torch

    start = _start(logw)
    if start is None:
        return Step(None, -math.inf, 0)
    logp, log_z = start
    remaining = logp.clone()
    hint = getattr(check, "implied", None)
    implied = _Implied(logp, hint) if hint is not None else None
    accepted: set[int] = set()
    checks, rejected, first_round, star, n_rej = 0, [], None, None, 0.0
    mass, log_m = 0.0, -math.inf  # the rejected mass m and its log
    for _ in range(max_accepts):
        for x in descending(_gumbel_keys(remaining, generator)):
            if implied is not None and x in implied.known:
                # rejected with an earlier token of this walk: a with-replacement draw of it
                # is one of the phantoms counted below, from m
                continue
            n_rej += _phantoms(log_m, generator)
            if x in accepted:
                ok = True
            else:
                checks += 1
                ok = check(x)
            if ok:
                accepted.add(x)
                star = x if star is None else star
                break
            rejected.append(x)
            n_rej += 1
            gone = implied.add(x) if implied is not None else [x]
            remaining[gone] = -math.inf
            mass += float(torch.exp(logp[gone]).sum())
            # log m from the rejected side while m is small; once it is not, from the kept mass
            # (log1p(-kept)), which stays exact as m approaches 1
            log_m = math.log(mass) if mass < 0.5 \
                else math.log1p(-math.exp(float(torch.logsumexp(remaining, 0))))
        else:  # walked the whole support without an accept: nothing is allowed
            return Step(None, -math.inf, checks, len(rejected),
                        implied=implied.count(rejected) if implied is not None else 0)
        if first_round is None:
            first_round = len(rejected)
    estimate = (max_accepts - 1) / (max_accepts + n_rej - 1)
    log_w = log_z + math.log(estimate) if estimate > 0 else -math.inf
    assert first_round is not None
    return Step(star, log_w, checks, first_round, len(rejected) - first_round,
                implied=implied.count(rejected) if implied is not None else 0)


#: genlm-control's switch: with max p >= 2/3 the geometric variant expects fewer than 2
#: distinct checks (1 + a negative binomial's mean 2 (1 - p) / p), the recursive one at least 2
GEOMETRIC_THRESHOLD = math.log(2 / 3)


def auto_step(logw: Any, check: Callable[[int], bool], generator: Any, max_accepts: int = 2) -> Step:
    """``geometric`` on a peaked step (``max p >= 2/3``) or with ``max_accepts > 2``, else
    ``recursive``."""
    import torch

    logw = logw.to(torch.float64)
    log_z = float(torch.logsumexp(logw, 0))
    if max_accepts > 2 or (log_z > -math.inf and float(logw.max()) - log_z >= GEOMETRIC_THRESHOLD):
        return geometric_step(logw, check, generator, max_accepts)
    return recursive_step(logw, check, generator)


def masking_step(logw: Any, check: Callable[[int], bool], generator: Any) -> Step:
    """Locally constrained decoding: ``c`` on every token with ``w(x) > 0``, then an
    exact draw from ``p_c``; the weight is the exact ``Z_c``."""
    import torch

    logw = logw.to(torch.float64)
    finite = torch.isfinite(logw)
    vector = getattr(check, "vector", None)
    if vector is not None:  # one token mask answers every candidate (llguidance)
        candidates = int(finite.sum())
        allowed = torch.nonzero(finite & vector(candidates).to(finite.device)).flatten().tolist()
        candidates = [None] * candidates
    else:
        candidates = torch.nonzero(finite).flatten().tolist()
        allowed = [x for x in candidates if check(x)]
    if not allowed:
        return Step(None, -math.inf, len(candidates), disallowed=len(candidates))
    masked = torch.full_like(logw, -math.inf)
    index = torch.tensor(allowed)
    masked[index] = logw[index]
    log_zc = float(torch.logsumexp(masked, 0))
    token = int(torch.multinomial(torch.exp(masked - log_zc), 1, generator=generator))
    return Step(token, log_zc, len(candidates), disallowed=len(candidates) - len(allowed))


SAMPLERS = {"two-round": awrs_step, "recursive": recursive_step, "geometric": geometric_step,
            "auto": auto_step, "masking": masking_step}
#: the samplers that take ``max_accepts``
TAKES_MAX_ACCEPTS = frozenset({"geometric", "auto"})
