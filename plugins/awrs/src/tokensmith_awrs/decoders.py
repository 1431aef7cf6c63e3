"""Decoder components: AWRS with importance weights / SMC, and full-masking (LCD).

AWRS: Lipkin et al., arXiv 2504.05410. Both decoders work over a token
:class:`tokensmith.LanguageModel` (through its tokenizer's byte view) or over
any :class:`tokensmith.ByteLanguageModel` (256 bytes + EOS).
"""

from __future__ import annotations

import math
from typing import Any

from tokensmith import BuildContext, Constraint, Decoder, Generation, InputError
from tokensmith.core.tokenizer import require_text

from .config import DecoderConfig
from .smc import SMCResult, smc
from .spaces import PLUGIN, space_for


class _SMCDecoder(Decoder):
    sampler = "awrs"

    def __init__(self, n_particles: int = 1, ess_threshold: float = 0.5) -> None:
        self.config = DecoderConfig(n_particles, ess_threshold)

    @classmethod
    def from_config(cls, config: DecoderConfig, ctx: BuildContext | None = None) -> _SMCDecoder:
        return cls(config.n_particles, config.ess_threshold)

    @property
    def component(self) -> str:
        return f"decoder '{self.name}'"

    def run(self, lm: Any, prompt: str, *, max_new_tokens: int = 32, constraint: Constraint | None = None,
            seed: int | None = None) -> SMCResult:
        """All particles with their weights, the estimate of P(c), and the counters."""
        import torch

        return self._smc(lm, prompt, max_new_tokens, constraint,
                         torch.Generator().manual_seed(0 if seed is None else seed))

    def _smc(self, lm: Any, prompt: str, max_new_tokens: int, constraint: Constraint | None,
             generator: Any) -> SMCResult:
        require_text(prompt, self.component)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}",
                             component=self.component, plugin=PLUGIN)
        if constraint is not None and not isinstance(constraint, Constraint):
            raise InputError(f"expected a tokensmith.Constraint, got {type(constraint).__name__}",
                             component=self.component, plugin=PLUGIN)
        return smc(space_for(lm, self.component), prompt, constraint, n_particles=self.config.n_particles,
                   max_new_tokens=max_new_tokens, ess_threshold=self.config.ess_threshold,
                   sampler=self.sampler, generator=generator, component=self.component)

    def generate(self, lm: Any, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation:
        """One string, drawn from the weighted posterior over the particles that reached
        EOS (with one particle: that particle). ``log_weight`` is the SMC estimate of
        ``log P(c)`` over strings that end within ``max_new_tokens`` (one particle: its
        importance weight). When no particle ended, the string is a draw from the
        truncated particles by their prefix weights, ``finish_reason`` is ``"length"``
        and ``log_weight`` is ``-inf``. ``details["posterior"]`` maps each distinct
        finished string to its normalised weight, ``details["truncated"]`` each truncated
        prefix to its share of the truncated particles' weight; ``counters["truncated"]``
        counts the truncated particles."""
        import torch

        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        result = self._smc(lm, prompt, max_new_tokens, constraint, generator)
        particles = result.particles
        chosen = particles[0]
        for finish in ("stop", "length"):
            pool = [p for p in particles if p.finish == finish and p.log_weight > -math.inf]
            if pool:
                # the SMC run's own generator continues: a fresh one with the same seed would
                # replay the draws that built the particles
                logw = torch.tensor([p.log_weight for p in pool], dtype=torch.float64)
                chosen = pool[int(torch.multinomial(torch.softmax(logw, 0), 1, generator=generator))]
                break
        truncated = sum(p.finish == "length" for p in particles)
        return Generation(text=chosen.text.decode("utf-8", errors="replace"), bytes=chosen.text,
                          ids=tuple(chosen.ids), log_weight=result.log_evidence,
                          counters={"constraint_checks": result.checks, "lm_calls": result.calls,
                                    "tokens": result.tokens, "n_particles": len(particles),
                                    "resamples": result.resamples, "truncated": truncated},
                          finish_reason=chosen.finish,
                          details={"posterior": _by_text(result.posterior()),
                                   "truncated": _by_text(result.truncated())})


class AWRSDecoder(_SMCDecoder):
    """Adaptive weighted rejection sampling; ``n_particles > 1`` runs SMC."""

    name = "awrs"
    sampler = "awrs"


class MaskingDecoder(_SMCDecoder):
    """Locally constrained decoding: the constraint on every token at every step."""

    name = "masking"
    sampler = "masking"


def _by_text(weights: dict[bytes, float]) -> dict[str, float]:
    """Weights keyed by text (byte strings that decode alike are summed)."""
    out: dict[str, float] = {}
    for text, p in weights.items():
        key = text.decode("utf-8", errors="replace")
        out[key] = out.get(key, 0.0) + p
    return out
