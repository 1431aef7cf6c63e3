"""The Decoder interface, and the prologue every decoder shares (:meth:`Decoder.begin`).

Randomness follows one rule for every decoder: with a ``seed`` the draw is
reproducible (same seed, same output, in any process); without one the
runtime's generator advances, so two calls return different samples — and a
fresh process with the same ``[runtime] seed`` replays the same sequence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import attrs

from .constraint import Constraint
from .errors import IncompatibleComponentsError, InputError
from .language_model import LanguageModel
from .records import Generation
from .runtime import Runtime, check_seed
from .tokenizer import encode_prompt, require_text


@attrs.define
class DecodeRequest:
    """A checked call of :meth:`Decoder.generate`, made by :meth:`Decoder.begin`.

    ``generator`` is the ``torch.Generator`` to draw from; ``lm_calls()`` counts the
    LM forwards since the request began.
    """

    lm: Any
    prompt: str
    max_new_tokens: int
    constraint: Constraint | None
    generator: Any
    component: str
    calls_before: int = 0

    def prompt_ids(self) -> list[int]:
        """The LM's start ids followed by the encoded prompt (token-level LMs); special-token
        strings are control tokens only in a :class:`~tokensmith.TrustedText` prompt."""
        return list(self.lm.start_ids) + list(encode_prompt(self.lm.tokenizer, self.prompt).ids)

    def lm_calls(self) -> int:
        counters = getattr(self.lm, "counters", None) or {}
        return int(counters.get("forward_calls", 0)) - self.calls_before

    def generation(self, ids: Any, raw: bytes, *, finish_reason: str, log_weight: float = 0.0,
                   counters: dict[str, Any] | None = None, details: dict[str, Any] | None = None
                   ) -> Generation:
        """The :class:`Generation` record, with ``lm_calls`` counted."""
        return Generation(text=raw.decode("utf-8", errors="replace"), bytes=raw, ids=tuple(ids),
                          log_weight=log_weight, counters={"lm_calls": self.lm_calls(), **(counters or {})},
                          finish_reason=finish_reason, details=details or {})


def runtime_of(lm: Any) -> Runtime | None:
    runtime = getattr(lm, "runtime", None)
    return runtime if isinstance(runtime, Runtime) else None


def generator_for(lm: Any, seed: int | None) -> Any:
    """A fresh generator for ``seed``; without one, the LM's runtime generator (which
    advances), or, for an LM without a runtime, a generator seeded from OS entropy."""
    import secrets

    import torch

    if seed is not None:
        return torch.Generator(device="cpu").manual_seed(seed)
    runtime = runtime_of(lm)
    if runtime is not None:
        return runtime.generator()
    return torch.Generator(device="cpu").manual_seed(secrets.randbits(63))


class Decoder(ABC):
    """Turns next-token distributions into a :class:`Generation`.

    ``accepts_constraint`` (a class attribute) says whether the decoder honours a
    constraint; the pipeline rejects a constraint for a decoder that does not,
    before anything runs, and :meth:`begin` refuses one at call time.
    """

    name: str = "decoder"
    accepts_constraint: bool = False

    @abstractmethod
    def generate(self, lm: LanguageModel, prompt: str, *, max_new_tokens: int = 32,
                 constraint: Constraint | None = None, seed: int | None = None) -> Generation: ...

    def begin(self, lm: Any, prompt: Any, *, max_new_tokens: Any, constraint: Any = None,
              seed: Any = None) -> DecodeRequest:
        """Check a call (same typed errors in every decoder) and pick its generator.

        ``prompt`` must be a non-empty ``str``, ``max_new_tokens`` an ``int >= 0``,
        ``seed`` ``None`` or an ``int`` in ``[0, 2**63)``, ``constraint`` ``None`` or
        a :class:`Constraint` (and only for decoders that accept one). Raises
        :class:`InputError` / :class:`IncompatibleComponentsError`.
        """
        component = f"decoder '{self.name}'"
        require_text(prompt, component)
        if not prompt:
            raise InputError("the prompt is empty", component=component,
                             hint="pass a non-empty prompt (the model's start ids are added for you)")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise InputError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}",
                             component=component)
        try:
            check_seed(seed, allow_none=True)
        except InputError as exc:
            exc.component = component
            raise
        if constraint is not None:
            if not self.accepts_constraint:
                raise IncompatibleComponentsError(
                    "this decoder cannot honour a constraint", component=component,
                    hint="use a decoder that accepts constraints (tokensmith components decoder)")
            if not isinstance(constraint, Constraint):
                raise InputError(f"expected a tokensmith.Constraint, got {type(constraint).__name__}",
                                 component=component)
        counters = getattr(lm, "counters", None) or {}
        return DecodeRequest(lm=lm, prompt=prompt, max_new_tokens=max_new_tokens, constraint=constraint,
                             generator=generator_for(lm, seed), component=component,
                             calls_before=int(counters.get("forward_calls", 0)))
