"""A tokensmith LanguageModel over a TransNormer LM's recurrent form.

TransNormerLLM, Qin et al., arXiv 2307.14995, section 3.3 (robust inference):
the cache is the per-layer KV state of :class:`~.model.RecurrentState`, whose
size is the same after 10 tokens or 10 million. A prompt is read with
Lightning Attention (blockwise) and each further token with one recurrent
step. States are immutable, so ``fork`` copies nothing and extending one
state twice is safe (there is no shared cache to go stale).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tokensmith import InputError, LanguageModel, LMState, Runtime, Tokenizer

from .model import TransNormerLM


class TransNormerLanguageModel(LanguageModel):
    """Next-token log-probabilities of a :class:`TransNormerLM` paired with ``tokenizer``.

    ``runtime`` is the one the model was built for; decoders called without a seed
    draw from its generator. ``context_length`` is only a guard for decoders (which
    stop there): the recurrence itself has no positional limit.
    """

    def __init__(self, model: TransNormerLM, tokenizer: Tokenizer, runtime: Runtime, *,
                 name: str = "transnormer", context_length: int = 1 << 20) -> None:
        super().__init__()
        self.model = model.eval()
        self._tokenizer = tokenizer
        self.runtime = runtime
        self.name = name
        self._context = context_length
        if tokenizer.vocab_size > model.config.vocab_size:
            raise InputError(f"tokenizer has {tokenizer.vocab_size} ids but the model only "
                             f"{model.config.vocab_size} output rows",
                             component=f"language model '{name}'",
                             hint="build the model with vocab_size = tokenizer.vocab_size")

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def context_length(self) -> int:
        return self._context

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _read(self, ids: list[int], state: Any, form: str) -> tuple[torch.Tensor, Any]:
        x = torch.tensor([ids], dtype=torch.long, device=self._device())
        with torch.inference_mode():
            logits, cache = self.model(x, form=form, state=state)
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += len(ids)
        return self.log_softmax(logits[0, -1]), cache

    def start(self, ids: Sequence[int]) -> LMState:
        ids = self.check_ids(ids)
        if not ids:
            raise InputError("start() needs at least one token", component=f"language model '{self.name}'",
                             hint="start from lm.start_ids")
        logprobs, cache = self._read(ids, None, "blockwise")
        return LMState(tuple(ids), logprobs, cache)

    def extend(self, state: LMState, ids: Sequence[int]) -> LMState:
        ids = self.check_ids(ids, already=len(state.ids))
        if not ids:
            return state
        logprobs, cache = self._read(ids, state.cache, "recurrent" if len(ids) == 1 else "blockwise")
        return LMState(state.ids + tuple(ids), logprobs, cache)

    def fork(self, state: LMState) -> LMState:
        return LMState(state.ids, state.logprobs, state.cache)

    def logprobs_batch(self, sequences: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        seqs = [self.check_ids(s) for s in sequences]
        if not seqs:
            return []
        width = max(len(s) for s in seqs)
        # right padding: a causal model's rows before the padding do not see it
        x = torch.zeros((len(seqs), width), dtype=torch.long, device=self._device())
        for row, s in enumerate(seqs):
            x[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        with torch.inference_mode():
            logits, _ = self.model(x, form="blockwise")
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += sum(len(s) for s in seqs)
        lp = self.log_softmax(logits)
        return [lp[row, : len(s)] for row, s in enumerate(seqs)]
