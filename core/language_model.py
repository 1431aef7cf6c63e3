"""The LanguageModel interface: next-token log-probabilities with cache reuse.

A :class:`LMState` is the model after reading a prefix: its ``ids``, the
next-token ``logprobs`` (a 1-D float tensor over the model's vocabulary) and
an opaque KV cache. :meth:`LanguageModel.extend` reuses and grows that cache,
so a state can be extended once; to branch, :meth:`LanguageModel.fork` it
first, or read several continuations at once with :meth:`LanguageModel.extend_batch`.
Extending a state twice raises :class:`StaleStateError` instead of
silently reading a cache that belongs to another branch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import attrs

from .errors import ContextLengthError, InputError
from .tokenizer import Tokenizer, require_ids, require_text


@attrs.define(eq=False)
class LMState:
    ids: tuple[int, ...]
    logprobs: Any
    cache: Any = None
    #: identity of the cache owner; a state is stale once its cache grew past it
    ticket: int = 0


class LanguageModel(ABC):
    """Next-token distributions of a causal LM over its tokenizer's ids.

    ``counters`` counts ``forward_calls`` and ``forward_tokens`` so decoders
    can report LM calls in their :class:`Generation`.
    """

    name: str = "lm"

    def __init__(self) -> None:
        self.counters: dict[str, int] = {"forward_calls": 0, "forward_tokens": 0}

    @property
    @abstractmethod
    def tokenizer(self) -> Tokenizer: ...

    @property
    @abstractmethod
    def context_length(self) -> int: ...

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Size of the model's output layer (may exceed the tokenizer's: padding rows)."""

    @property
    def start_ids(self) -> tuple[int, ...]:
        """Ids every sequence is conditioned on (BOS, or EOS for models without BOS)."""
        tok = self.tokenizer
        if tok.bos_id is not None:
            return (tok.bos_id,)
        if tok.eos_id is not None:
            return (tok.eos_id,)
        return ()

    @abstractmethod
    def start(self, ids: Sequence[int]) -> LMState:
        """Read ``ids`` (non-empty) from scratch."""

    @abstractmethod
    def extend(self, state: LMState, ids: Sequence[int]) -> LMState:
        """Read ``ids`` after ``state``, reusing its cache (which the new state then owns)."""

    @abstractmethod
    def fork(self, state: LMState) -> LMState:
        """A copy of ``state`` with its own cache, so both can be extended."""

    def extend_batch(self, state: LMState, continuations: Sequence[Sequence[int]], *,
                     defer: Sequence[bool] | None = None) -> list[LMState]:
        """Read each continuation after ``state``: one new state per continuation, as if each had
        been ``extend``-ed onto its own ``fork`` of ``state``, which stays usable (extend it, fork
        it, or batch-extend it again). For tree searches that branch one state into several
        (byte-level covers, beams, SMC particles).

        ``defer`` (one flag per continuation) says which rows' next-token distributions the
        caller does not need yet (a search reading ahead): an adapter may then return such a
        state with ``logprobs=None`` and compute them only in :meth:`with_logprobs`, which is
        exact (the same numbers, later). Adapters that cannot defer ignore it.

        The default forks and extends per row; adapters override it with one batched forward
        over the shared state (:class:`~tokensmith.HFCausalLM` does, and its result states share
        ``state``'s KV cache instead of copying it). An empty continuation gives a fork."""
        component = f"language model '{self.name}'"
        if isinstance(continuations, (str, bytes)) or not isinstance(continuations, Sequence):
            raise InputError(f"continuations must be a list of token-id lists, got "
                             f"{type(continuations).__name__}", component=component,
                             hint="pass [[id, ...], ...]")
        conts = [self.check_ids(c, already=len(state.ids)) for c in continuations]
        check_defer(defer, len(conts), component)
        return [self.extend(self.fork(state), c) if c else self.fork(state) for c in conts]

    def with_logprobs(self, state: LMState) -> LMState:
        """``state`` with its next-token ``logprobs`` computed, for a state that
        :meth:`extend_batch` returned with them deferred (``logprobs=None``); any other state is
        returned as it is."""
        if state.logprobs is not None:
            return state
        raise InputError("this state has no next-token distribution and no deferred one to compute",
                         component=f"language model '{self.name}'",
                         hint="pass states made by this language model's extend_batch")

    @abstractmethod
    def logprobs_batch(self, sequences: Sequence[Sequence[int]]) -> list[Any]:
        """For each sequence a ``[len(seq), vocab]`` tensor: row ``i`` is the
        next-token log-distribution after ``seq[: i + 1]``. Batched, no cache."""

    def logits_with_grad(self, input_ids: Any, attention_mask: Any = None) -> Any:
        """Logits ``[batch, seq, vocab]`` of a batch of ids (a 2-D integer tensor or a list of
        equal-length id lists; ``attention_mask`` 1 for real tokens, 0 for padding), computed
        with autograd, so a loss of them back-propagates into the model's parameters. The
        model runs in whatever mode it is in (``eval()`` unless the caller set ``train()``);
        under ``torch.inference_mode()`` nothing can record gradients.

        Implementations that can train override this; the default says it cannot."""
        from .errors import IncompatibleComponentsError

        raise IncompatibleComponentsError(
            "has no gradient-enabled path (logits_with_grad)", component=f"language model '{self.name}'",
            hint="score completions without gradients (sequence_logprobs(..., grad=False)), or use a "
            "LanguageModel that implements logits_with_grad")

    def sequence_logprobs(self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                          *, grad: bool = True) -> list[Any]:
        """For each ``(prompt, completion)`` pair of id lists, a 1-D float tensor of
        ``len(completion)`` entries: entry ``i`` is ``log p(completion[i] | prompt +
        completion[:i])``. All pairs run in one right-padded batch. With ``grad`` (the
        default) they come from :meth:`logits_with_grad` and carry gradients to the model's
        parameters (policy-gradient and preference objectives); without, from
        :meth:`logprobs_batch`'s inference path, with equal values.

        A prompt must not be empty (the first completion token needs a context: start it
        with ``start_ids``); ids are checked like every other input (:class:`InputError`,
        :class:`ContextLengthError`)."""
        import torch

        component = f"language model '{self.name}'"
        for what, value in (("prompts", prompts), ("completions", completions)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise InputError(f"{what} must be a list of token-id lists, got {type(value).__name__}",
                                 component=component, hint="encode text with lm.tokenizer.encode(text).ids")
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts but {len(completions)} completions",
                             component=component, hint="give one completion per prompt")
        pairs = [(self.check_ids(p), self.check_ids(c, already=len(p))) for p, c in zip(prompts, completions)]
        empty = [i for i, (p, _) in enumerate(pairs) if not p]
        if empty:
            raise InputError(f"prompt {empty[0]} is empty: the first completion token needs a context",
                             component=component, hint="start each prompt with lm.start_ids")
        if not pairs:
            return []
        seqs = [p + c for p, c in pairs]
        if grad:
            width = max(len(s) for s in seqs)
            pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for row, s in enumerate(seqs):
                ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
                mask[row, : len(s)] = 1
            logprobs = self.log_softmax(self.logits_with_grad(ids, mask))
            rows = [logprobs[row, : len(s)] for row, s in enumerate(seqs)]
        else:
            rows = self.logprobs_batch(seqs)
        out = []
        for row, (p, c) in zip(rows, pairs):
            at = torch.arange(len(p) - 1, len(p) - 1 + len(c), device=row.device)
            out.append(row[at, torch.tensor(c, dtype=torch.long, device=row.device)])
        return out

    @staticmethod
    def log_softmax(logits: Any) -> Any:
        """Next-token log-probabilities from logits: float32, or float64 for a float64 model."""
        import torch

        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        return torch.log_softmax(logits.to(dtype), dim=-1)

    def check_ids(self, ids: Sequence[int], *, already: int = 0) -> list[int]:
        """``ids`` as Python ints in ``[0, vocab_size)`` that fit the context after ``already``
        tokens; :class:`InputError` for text, bools, floats (never truncated) or ids outside
        the vocabulary, :class:`ContextLengthError` past the context length."""
        component = f"language model '{self.name}'"
        if isinstance(ids, (str, bytes)):
            raise InputError(f"expected token ids, got {type(ids).__name__}", component=component,
                             hint="encode text with lm.tokenizer.encode(text).ids")
        out = require_ids(ids, self.vocab_size, component)
        if already + len(out) > self.context_length:
            raise ContextLengthError(
                f"{already + len(out)} tokens exceed the context length {self.context_length}",
                component=component, hint="shorten the prompt or lower max_new_tokens")
        return out

    def score_ids(self, ids: Sequence[int], *, context: Sequence[int] | None = None) -> float:
        """log p(ids | context) as the sum of token log-probs (context defaults to start_ids)."""
        context = list(self.start_ids if context is None else context)
        if not context:
            raise InputError("scoring needs a non-empty context to condition the first token on",
                             component=f"language model '{self.name}'",
                             hint="pass context=[...] explicitly")
        ids = list(ids)
        full = context + ids
        rows = self.logprobs_batch([full])[0]
        total = 0.0
        for pos, tok in enumerate(ids):
            total += float(rows[len(context) - 1 + pos, tok])
        return total

    def score(self, text: str, *, context: Sequence[int] | None = None) -> float:
        """Exact log-probability of ``text``'s tokenization given ``context``."""
        require_text(text, f"language model '{self.name}'")
        return self.score_ids(self.tokenizer.encode(text).ids, context=context)


#: index of end-of-string in a :class:`ByteState`'s ``logprobs`` (after the 256 byte values)
BYTE_EOS = 256


@attrs.define(eq=False)
class ByteState:
    """A byte-level LM after reading ``prefix``: ``logprobs`` is a 1-D tensor of 257
    entries, the next byte 0..255 and end-of-string at :data:`BYTE_EOS`.
    ``data`` is the implementation's own (cover set, caches)."""

    prefix: bytes
    logprobs: Any
    data: Any = None


class ByteLanguageModel(ABC):
    """Next-byte distributions (e.g. derived exactly from a token LM by tokensmith-byteprob).

    Decoders and constraints that work on bytes (AWRS over 256 bytes, byte-level
    ensembles) use this interface, whoever implements it.
    """

    name: str = "byte-lm"

    @abstractmethod
    def start(self, prompt: bytes) -> ByteState:
        """The state after reading ``prompt`` (which may end mid-token)."""

    @abstractmethod
    def advance(self, state: ByteState, byte: int) -> ByteState:
        """The state after one more byte (0..255)."""

    def score_bytes(self, prompt: bytes, continuation: bytes) -> float:
        """log P(continuation | prompt) by the chain rule over bytes."""
        state = self.start(prompt)
        total = 0.0
        for b in continuation:
            total += float(state.logprobs[b])
            state = self.advance(state, b)
        return total


def check_defer(defer: Sequence[bool] | None, n: int, component: str) -> None:
    """``defer`` of :meth:`LanguageModel.extend_batch`: None, or one bool per continuation."""
    if defer is None:
        return
    if isinstance(defer, (str, bytes)) or not isinstance(defer, Sequence) or len(defer) != n \
            or not all(isinstance(d, bool) for d in defer):
        raise InputError(f"defer must be one bool per continuation ({n}), got {defer!r}",
                         component=component, hint="pass [True, False, ...] or None")
