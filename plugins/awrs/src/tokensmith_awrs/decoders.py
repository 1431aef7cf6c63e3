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
from .spaces import space_for


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

        require_text(prompt, self.component)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}",
                             component=self.component)
        if constraint is not None and not isinstance(constraint, Constraint):
            raise InputError(f"expected a tokensmith.Constraint, got {type(constraint).__name__}",
                             component=self.component)
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        return smc(space_for(lm, self.component), prompt, constraint, n_particles=self.config.n_particles,
                   max_new_tokens=max_new_tokens, ess_threshold=self.config.ess_threshold,
                   sampler=self.sampler, generator=generator, component=self.component)

    def generate(self, lm: Any, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation:
        """One string: with one particle its own weight (the product of the step
        weights); with several, a draw from the weighted posterior and the SMC
        estimate of P(c) as ``log_weight``. ``details["posterior"]`` maps each
        distinct string to its normalised posterior weight."""
        import torch

        result = self.run(lm, prompt, max_new_tokens=max_new_tokens, constraint=constraint, seed=seed)
        particles = result.particles
        if len(particles) == 1:
            chosen, log_weight = particles[0], particles[0].log_weight
        else:
            log_weight = result.log_evidence
            chosen = particles[0]
            if log_weight > -math.inf:
                logw = torch.tensor([p.log_weight for p in particles], dtype=torch.float64)
                generator = torch.Generator().manual_seed(0 if seed is None else seed)
                chosen = particles[int(torch.multinomial(torch.softmax(logw, 0), 1, generator=generator))]
        return Generation(text=chosen.text.decode("utf-8", errors="replace"), bytes=chosen.text,
                          ids=tuple(chosen.ids), log_weight=log_weight,
                          counters={"constraint_checks": result.checks, "lm_calls": result.calls,
                                    "tokens": sum(len(p.ids) for p in particles),
                                    "n_particles": len(particles), "resamples": result.resamples},
                          finish_reason=chosen.finish,
                          details={"posterior": _text_posterior(result)})


class AWRSDecoder(_SMCDecoder):
    """Adaptive weighted rejection sampling; ``n_particles > 1`` runs SMC."""

    name = "awrs"
    sampler = "awrs"


class MaskingDecoder(_SMCDecoder):
    """Locally constrained decoding: the constraint on every token at every step."""

    name = "masking"
    sampler = "masking"


def _text_posterior(result: SMCResult) -> dict[str, float]:
    """The posterior keyed by text (byte strings that decode alike are summed)."""
    out: dict[str, float] = {}
    for text, p in result.posterior().items():
        key = text.decode("utf-8", errors="replace")
        out[key] = out.get(key, 0.0) + p
    return out
