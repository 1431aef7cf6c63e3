"""Sequential Monte Carlo with AWRS proposals (Lipkin et al., arXiv 2504.05410, Sec. 4).

N particles are extended one symbol at a time by a token sampler (AWRS, or
full masking); each particle's weight is multiplied by the sampler's weight
(the unbiased estimate of the local ``Z_c``). When the effective sample size
``(sum w)^2 / sum w^2`` falls below ``ess_threshold * N`` the particles are
resampled multinomially and all take the mean weight, so the running estimate
of ``P(c)`` is preserved. Particles that already ended (EOS) are left out of resampling:
they keep their final weights. At the end the normalised weights of the particles
that reached EOS are a posterior over strings, and the mean weight (with every
other particle counted as 0) is an unbiased estimate of the probability that
the LM's string satisfies the constraint *and* ends within ``max_new_tokens``.

A particle stopped by the length limit (``finish == "length"``) is truncated: its
weight covers only the prefix constraint ``allows``, not acceptance, so it is
left out of the posterior and the evidence (a final weight of 0: the indicator
of having ended is the target's last potential) and reported apart, by
:meth:`SMCResult.truncated`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import attrs

from tokensmith import AllOf, AnyOf, Constraint

from .incremental import IncrementalConstraint, allows_after
from .sampler import SAMPLERS, TAKES_MAX_ACCEPTS, Step
from .spaces import byte_alphabet


@attrs.define
class Particle:
    state: Any
    ids: list[int] = attrs.field(factory=list)
    text: bytes = b""
    log_weight: float = 0.0
    finish: str = ""  # "" while running; then "stop", "length" or "rejected"


@attrs.frozen
class SMCResult:
    particles: tuple[Particle, ...]
    #: log of the SMC estimate of P(c and EOS within max_new_tokens): the log mean final
    #: weight, truncated particles counted as 0
    log_evidence: float
    checks: int
    calls: int
    resamples: int
    #: tokens appended by the sampler (a resampled copy's inherited tokens are not counted again)
    tokens: int
    #: token masks computed (llguidance constraints over a token LM: one per particle and step)
    masks: int = 0

    def posterior(self) -> dict[bytes, float]:
        """Normalised weight of each distinct finished string (truncated and zero-weight
        particles left out)."""
        return _normalised([p for p in self.particles if p.finish == "stop"])

    def truncated(self) -> dict[bytes, float]:
        """The particles stopped by the length limit, each distinct prefix with its
        normalised weight among them (their weights check only the prefix constraint)."""
        return _normalised([p for p in self.particles if p.finish == "length"])


def _normalised(particles: list[Particle]) -> dict[bytes, float]:
    finite = [p.log_weight for p in particles if p.log_weight > -math.inf]
    if not finite:
        return {}
    top = max(finite)
    out: dict[bytes, float] = {}
    for p in particles:
        if p.log_weight > -math.inf:
            out[p.text] = out.get(p.text, 0.0) + math.exp(p.log_weight - top)
    total = sum(out.values())
    return {k: v / total for k, v in out.items()}


def log_mean_exp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def _closure_check(constraint: IncrementalConstraint, index: Any, pieces: tuple, prefix: bytes) -> Any:
    """A check from the cached prefix state that also knows, after rejecting ``x``, the tokens
    rejected with it: ``allows`` is prefix-closed, so when ``prefix + piece(x)[:j + 1]`` is dead
    every token whose bytes start with ``piece(x)[:j + 1]`` is rejected as well. ``check.implied(x)``
    gives their ids (``x`` among them) without evaluating the constraint on any of them."""
    dead: dict[int, bytes] = {}

    def check(x: int) -> bool:
        piece = pieces[x]
        live = constraint.live_length_after(prefix, piece)
        if live == len(piece):
            return True
        dead[x] = piece[:live + 1]
        return False

    check.implied = lambda x: index.extending(dead[x]) if x in dead else None  # type: ignore[attr-defined]
    return check


def _part_check(constraint: Constraint, space: Any, ids: list[int], prefix: bytes,
                closure: bool = True) -> Callable[[int], bool]:
    """``allows(prefix + piece(x))`` for one (part of a) constraint: through llguidance's token
    mask when the space has one for it (one mask per step, made at the first check; each check
    a counted lookup), part by part for ``&``/``|`` (every part's checks counted), else
    incrementally from the cached prefix state."""
    if isinstance(constraint, (AllOf, AnyOf)):
        checks = {id(part): _part_check(part, space, ids, prefix, closure=False) for part in constraint.parts}
        return lambda x: constraint.through_parts(lambda part: checks[id(part)](x))
    masker = space.masker(constraint)
    if masker is None:
        pieces = space.pieces
        index = getattr(space, "index", None)
        if closure and isinstance(constraint, IncrementalConstraint) and index is not None:
            return _closure_check(constraint, index(), pieces, prefix)
        return lambda x: allows_after(constraint, prefix, pieces[x])
    mask: list[Any] = []

    def lookup(x: int) -> bool:
        if not mask:
            mask.append(masker.mask(ids))
            space.masks += 1
        constraint.checks += 1
        return bool(mask[0][x])

    def vector(candidates: int) -> Any:
        """The whole mask at once (what masking needs), counted as one check per candidate."""
        if not mask:
            mask.append(masker.mask(ids))
            space.masks += 1
        constraint.checks += candidates
        return mask[0]

    lookup.vector = vector  # type: ignore[attr-defined]
    return lookup


def symbol_check(constraint: Constraint | None, space: Any, prefix: bytes,
                 ids: list[int] | None = None, closure: bool = True) -> Callable[[int], bool]:
    """``c`` for the next symbol after ``prefix`` (generated as the symbols ``ids``): a stop
    symbol asks whether ``prefix`` is accepted (evaluated once per step), any other symbol
    whether ``prefix + bytes`` is allowed. With ``closure``, over a space with a prefix index
    (token LMs) and a plain automaton constraint, it has an ``implied(x)`` attribute: after ``x``
    was rejected, the ids of every token rejected with it. When the constraint's whole check is one mask,
    the function has a ``vector(candidates)`` attribute giving it over every symbol (stops
    included)."""
    if constraint is None:
        return lambda x: True
    stops = space.stops
    inner = _part_check(constraint, space, list(ids or ()), prefix, closure)
    accepted: list[bool] = []

    def at_end() -> bool:
        if not accepted:
            accepted.append(constraint.accepts(prefix))
        return accepted[0]

    def check(x: int) -> bool:
        if x in stops:
            return at_end()
        return inner(x)

    implied = getattr(inner, "implied", None)
    if implied is not None:
        # a rejected stop (the text so far is not accepted) implies nothing about other tokens
        check.implied = lambda x: None if x in stops else implied(x)  # type: ignore[attr-defined]
    whole = getattr(inner, "vector", None)
    if whole is not None:
        def vector(candidates: int) -> Any:
            out = whole(candidates).clone()
            out[list(stops)] = at_end()
            return out

        check.vector = vector  # type: ignore[attr-defined]
    return check


def extend(space: Any, particle: Particle, constraint: Constraint | None, sampler: Callable[..., Step],
           generator: Any, last: bool, closure: bool = True) -> Step:
    """Extend one running particle by one symbol (in place) and return the sampler's step."""
    step = sampler(space.logweights(particle.state),
                   symbol_check(constraint, space, particle.text, particle.ids, closure), generator)
    particle.log_weight += step.log_weight
    if step.token is None:
        particle.finish = "rejected"
    elif step.token in space.stops:
        particle.finish = "stop"
    else:
        particle.ids.append(step.token)
        particle.text += space.pieces[step.token]
        state = None if last else space.advance(particle.state, step.token)
        if state is None:
            particle.finish = "length"
        else:
            particle.state = state
    return step


def _resample(space: Any, particles: list[Particle], pool: list[int], generator: Any) -> list[Particle]:
    """Multinomial resampling of the particles at the indices ``pool`` among themselves (the
    others are returned as they are): ``len(pool)`` draws by weight, each copy carrying the
    pool's mean weight, so the pool's total weight, and with it the estimate of ``P(c)``, is
    preserved (``E[sum of w' f(x')] = sum of w f(x)`` over the pool, for every ``f``)."""
    import torch

    logw = torch.tensor([particles[i].log_weight for i in pool], dtype=torch.float64)
    probs = torch.softmax(logw, 0)
    picks = torch.multinomial(probs, len(pool), replacement=True, generator=generator).tolist()
    mean = log_mean_exp([particles[i].log_weight for i in pool])
    used: set[int] = set()
    out = list(particles)
    for slot, k in zip(pool, picks):
        src = particles[pool[k]]
        # the first copy keeps the (single-use) LM state; further running copies fork it
        state = src.state if (k not in used or src.finish) else space.fork(src.state)
        used.add(k)
        out[slot] = Particle(state, list(src.ids), src.text, mean, src.finish)
    return out


def smc(space: Any, prompt: str, constraint: Constraint | None, *, n_particles: int,
        max_new_tokens: int, ess_threshold: float = 0.5, sampler: str = "auto", max_accepts: int = 2,
        prune: bool = True, closure: bool = True, generator: Any) -> SMCResult:
    """Run SMC from ``prompt``; see the module docstring. ``sampler`` names the token
    sampler (:data:`~tokensmith_awrs.sampler.SAMPLERS`); ``prune`` drops the symbols that
    contain a byte outside the constraint's alphabet before any step; ``closure`` lets a rejected
    token's dead byte prefix drop the tokens that extend it unchecked (:func:`symbol_check`)."""
    step_fn = SAMPLERS[sampler]
    if sampler in TAKES_MAX_ACCEPTS:
        step_fn = functools.partial(step_fn, max_accepts=max_accepts)
    if prune:
        space.restrict(byte_alphabet(constraint), constraint)
    checks0 = constraint.checks if constraint is not None else 0
    calls0 = space.calls()
    root = space.start(prompt)
    particles = [Particle(root if k == 0 else space.fork(root)) for k in range(n_particles)]
    resamples = tokens = 0
    if max_new_tokens == 0:
        for p in particles:
            p.finish = "length"
    for t in range(max_new_tokens):
        for p in particles:
            if not p.finish:
                step = extend(space, p, constraint, step_fn, generator, last=t == max_new_tokens - 1,
                              closure=closure)
                tokens += step.token is not None and step.token not in space.stops
        if t == max_new_tokens - 1:
            for p in particles:
                p.finish = p.finish or "length"
        if all(p.finish for p in particles):
            break
        # particles that ended (EOS) keep their final weights and are never resampled: their
        # weights are complete while the running ones' are not yet (their EOS and later
        # factors are still to come), so resampling across both would drop early-ending
        # strings wholesale (examples/ensemble-smc); the pool is the rest (rejected ones, weight
        # 0, are replaced there), and the pool's ESS decides
        pool = [i for i, p in enumerate(particles) if p.finish != "stop"]
        weights = [particles[i].log_weight for i in pool]
        top = max(weights, default=-math.inf)
        if top == -math.inf:
            continue
        w = [math.exp(v - top) for v in weights]
        ess = sum(w) ** 2 / sum(x * x for x in w)
        if ess < ess_threshold * len(pool):
            particles = _resample(space, particles, pool, generator)
            resamples += 1
    checks = (constraint.checks - checks0) if constraint is not None else 0
    final = [p.log_weight if p.finish == "stop" else -math.inf for p in particles]
    return SMCResult(tuple(particles), log_mean_exp(final), checks, space.calls() - calls0, resamples, tokens,
                     space.masks)
