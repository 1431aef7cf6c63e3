"""Byte-level ensembles of LMs with different vocabularies.

Phan et al., arXiv 2410.09303, Sec. 5: once every model speaks bytes, models
with different tokenizers can be mixed; the paper averages next-byte
probabilities. Here the mixture weights are explicit (default: uniform).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tokensmith import ByteLanguageModel, ByteState, InputError


class ByteEnsemble(ByteLanguageModel):
    """``p(b | x) = sum_i w_i p_i(b | x)`` over member :class:`ByteLanguageModel`\\ s.

    ``runtime`` is the first member runtime (decoders draw from its generator when
    no seed is given); ``counters`` sums the forwards of the members' token LMs.
    """

    def __init__(self, members: Sequence[ByteLanguageModel], weights: Sequence[float] | None = None,
                 name: str = "byte-ensemble") -> None:
        if len(members) < 1:
            raise InputError("an ensemble needs at least one member", component=f"byte LM '{name}'")
        weights = [1.0] * len(members) if weights is None else [float(w) for w in weights]
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise InputError(f"need one non-negative weight per member, not all zero; got {weights}",
                             component=f"byte LM '{name}'")
        total = sum(weights)
        self.members = list(members)
        self.log_weights = [math.log(w / total) if w > 0 else -math.inf for w in weights]
        self.name = name

    @property
    def runtime(self) -> Any:
        return next((r for r in (getattr(m, "runtime", None) for m in self.members) if r is not None), None)

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of ``forward_calls`` / ``forward_tokens``; a token LM that several
        members wrap is counted once."""
        lms = {id(getattr(m, "lm", m)): m for m in self.members}
        out = {"forward_calls": 0, "forward_tokens": 0}
        for member in lms.values():
            counters = getattr(member, "counters", None) or {}
            for key in out:
                out[key] += int(counters.get(key, 0))
        return out

    def _combine(self, prefix: bytes, states: list[ByteState | None]) -> ByteState:
        import torch

        live = [(s, lw) for s, lw in zip(states, self.log_weights) if s is not None and lw > -math.inf]
        norm = torch.logsumexp(torch.tensor([lw for _, lw in live], dtype=torch.float64), 0)
        stacked = torch.stack([s.logprobs.double() + lw - norm for s, lw in live])
        return ByteState(prefix, torch.logsumexp(stacked, 0), states)

    def start(self, prompt: bytes) -> ByteState:
        return self._combine(bytes(prompt), [m.start(prompt) for m in self.members])

    def advance(self, state: ByteState, byte: int) -> ByteState:
        if float(state.logprobs[byte]) == -math.inf:
            raise InputError(f"byte 0x{byte:02x} has probability 0 under every member",
                             component=f"byte LM '{self.name}'")
        # a member giving this byte probability 0 drops out; the others' weights are renormalized
        states = [None if s is None or float(s.logprobs[byte]) == -math.inf else m.advance(s, byte)
                  for m, s in zip(self.members, state.data)]
        return self._combine(state.prefix + bytes([byte]), states)
