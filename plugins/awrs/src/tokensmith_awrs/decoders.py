"""Decoder components: AWRS with importance weights / SMC, and full-masking (LCD).

AWRS: Lipkin et al., arXiv 2504.05410. Both decoders work over a token
:class:`tokensmith.LanguageModel` (through its tokenizer's byte view) or over
any :class:`tokensmith.ByteLanguageModel` (256 bytes + EOS).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from tokensmith import (
    ConfigError,
    Constraint,
    Decoder,
    DecodeRequest,
    Generation,
    ResourceLimitError,
    positive_int,
    unit_interval,
)

from .smc import SMCResult, log_mean_exp, smc
from .spaces import space_for

#: the most particles one decoder runs: each holds its own copy of the LM's KV cache
MAX_PARTICLES = 4096


def _particle_bound(instance: Any, attribute: Any, value: int) -> None:
    if value > MAX_PARTICLES:
        raise ResourceLimitError(
            f"{attribute.name}={value} is more than {MAX_PARTICLES} particles (each holds its own KV cache)",
            component=f"decoder '{instance.name}'" if instance is not None else None,
            hint="memory grows with particles x tokens; a few hundred particles are usually plenty")


@attrs.define
class _SMCDecoder(Decoder):
    n_particles: int = attrs.field(default=1, validator=[positive_int, _particle_bound], metadata={
        "doc": f"1: one importance-weighted sample; more: SMC with resampling (at most {MAX_PARTICLES})"})
    ess_threshold: float = attrs.field(default=0.5, validator=unit_interval, metadata={
        "doc": "resample when ESS < ess_threshold * n_particles (the paper's example uses 0.5)"})
    prune: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "drop tokens with a byte outside the constraint's alphabet before sampling (the paper's "
               "a-priori pruning; regex constraints declare their alphabet)"})

    accepts_constraint = True

    @property
    def sampler(self) -> str:
        return "masking"

    @property
    def max_accepts(self) -> int:
        return 2

    def run(self, lm: Any, prompt: str, *, max_new_tokens: int = 32, constraint: Constraint | None = None,
            seed: int | None = None) -> SMCResult:
        """All particles with their weights, the estimate of P(c), and the counters."""
        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        return self._smc(request)

    def _smc(self, request: DecodeRequest) -> SMCResult:
        return smc(space_for(request.lm, request.component), request.prompt, request.constraint,
                   n_particles=self.n_particles, max_new_tokens=request.max_new_tokens,
                   ess_threshold=self.ess_threshold, sampler=self.sampler, max_accepts=self.max_accepts,
                   prune=self.prune, closure=getattr(self, "closure", False), generator=request.generator)

    def generate(self, lm: Any, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation:
        """One string, drawn from the weighted posterior over the particles that reached
        EOS (with one particle: that particle). ``log_weight`` is the SMC estimate of
        ``log P(c)`` over strings that end within ``max_new_tokens`` (one particle: its
        importance weight). When no particle ended, the string is a draw from the
        truncated particles by their prefix weights, ``finish_reason`` is ``"length"``,
        ``log_weight`` is ``-inf`` (no accepted string was seen) and ``prefix_log_weight``
        the weight so far: the log mean over the particles of the truncated ones' weights
        (one particle: its weight), which covers the prefix constraint only. When every
        particle was rejected, ``finish_reason`` is ``"rejected"`` and ``prefix_log_weight``
        ``None``. ``details["posterior"]`` maps each distinct finished string to its
        normalised weight, ``details["truncated"]`` each truncated prefix to its share of
        the truncated particles' weight; ``counters["truncated"]`` and
        ``counters["rejected"]`` count those particles."""
        import torch

        request = self.begin(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        result = self._smc(request)
        particles = result.particles
        chosen = particles[0]
        for finish in ("stop", "length"):
            pool = [p for p in particles if p.finish == finish and p.log_weight > -math.inf]
            if pool:
                # the SMC run's own generator continues: a fresh one with the same seed would
                # replay the draws that built the particles
                logw = torch.tensor([p.log_weight for p in pool], dtype=torch.float64)
                chosen = pool[int(torch.multinomial(torch.softmax(logw, 0), 1, generator=request.generator))]
                break
        truncated = sum(p.finish == "length" for p in particles)
        prefix_log_weight = None
        if chosen.finish == "length":
            prefix_log_weight = log_mean_exp([p.log_weight if p.finish == "length" else -math.inf
                                              for p in particles])
        # lm_calls from the symbol space: a ByteLanguageModel counts its start/advance calls there
        gen = request.generation(chosen.ids, chosen.text, finish_reason=chosen.finish,
                                 log_weight=result.log_evidence,
                                 counters={"lm_calls": result.calls, "constraint_checks": result.checks,
                                           "tokens": result.tokens, "n_particles": len(particles),
                                           "resamples": result.resamples, "truncated": truncated,
                                           "rejected": sum(p.finish == "rejected" for p in particles),
                                           "token_masks": result.masks},
                                 details={"posterior": _by_text(result.posterior()),
                                          "truncated": _by_text(result.truncated())})
        return attrs.evolve(gen, prefix_log_weight=prefix_log_weight)


#: the AWRS weight estimators (see :mod:`tokensmith_awrs.sampler`)
VARIANTS = ("auto", "recursive", "geometric", "two-round")


def _at_least_two(instance: Any, attribute: Any, value: int) -> None:
    positive_int(instance, attribute, value)
    if value < 2:
        raise ConfigError(f"{attribute.name} must be >= 2 (the estimator (A - 1) / (A + n - 1) needs two "
                          f"accepts), got {value}", component="decoder 'awrs'")


@attrs.define
class AWRSDecoder(_SMCDecoder):
    """Adaptive weighted rejection sampling; ``n_particles > 1`` runs SMC."""

    name = "awrs"

    variant: str = attrs.field(default="auto", validator=attrs.validators.in_(VARIANTS), metadata={
        "doc": "weight estimator: auto (geometric when max p >= 2/3, else recursive: genlm-control's rule), "
               "recursive (one pass), geometric (with-replacement counts), two-round (the paper's)"})
    max_accepts: int = attrs.field(default=2, validator=_at_least_two, metadata={
        "doc": "accepts the geometric estimator waits for (more: lower variance, more checks); auto "
               "uses geometric whenever it is above 2"})
    closure: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "a rejected token whose automaton walk died at byte j also rejects, unchecked, every token "
               "extending its first j+1 bytes (allows is prefix-closed; regex/json-schema over a token LM; "
               "recursive/geometric/auto estimators)"})

    @property
    def sampler(self) -> str:
        return self.variant


@attrs.define
class MaskingDecoder(_SMCDecoder):
    """Locally constrained decoding: the constraint on every token at every step."""

    name = "masking"


def _by_text(weights: dict[bytes, float]) -> dict[str, float]:
    """Weights keyed by text (byte strings that decode alike are summed)."""
    out: dict[str, float] = {}
    for text, p in weights.items():
        key = text.decode("utf-8", errors="replace")
        out[key] = out.get(key, 0.0) + p
    return out
