"""LanguageModel adapter over a transformers causal LM, with KV-cache reuse."""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from tokensmith.core.errors import ContextLengthError, InputError, StaleStateError
from tokensmith.core.language_model import LanguageModel, LMState, check_defer
from tokensmith.core.runtime import Runtime
from tokensmith.core.tokenizer import Tokenizer

_tickets = itertools.count(1)
#: a chain of shared KV segments longer than this is copied into one (bounds the per-forward concatenation)
MAX_SEGMENT_DEPTH = 64


class KVSegment:
    """The keys and values (one tensor per layer, ``[1, heads, tokens, dim]``) of the tokens read
    after ``parent`` (None: from the start). Never mutated, so every state whose tokens pass
    through a segment shares it: the states :meth:`HFCausalLM.extend_batch` returns hold only
    their own continuation's keys and values, not a copy of the shared prefix's."""

    def __init__(self, parent: KVSegment | None, keys: tuple[Any, ...], values: tuple[Any, ...]) -> None:
        self.parent, self.keys, self.values = parent, keys, values
        #: the last token's final hidden state (the output layer's input) while its state's
        #: next-token distribution is deferred (``extend_batch(..., defer=)``), else None
        self.hidden: Any = None
        self.depth = 0 if parent is None else parent.depth + 1
        self.length = int(keys[0].shape[-2]) + (0 if parent is None else parent.length)

    def full(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """Keys and values of every token up to and including this segment (concatenated: HF's
        own cache concatenates its past at every step too)."""
        import torch

        chain, seg = [], self
        while seg is not None:
            chain.append(seg)
            seg = seg.parent
        if len(chain) == 1:
            return self.keys, self.values
        chain.reverse()
        keys = tuple(torch.cat([c.keys[i] for c in chain], dim=-2) for i in range(len(self.keys)))
        values = tuple(torch.cat([c.values[i] for c in chain], dim=-2) for i in range(len(self.values)))
        return keys, values


#: forwards of 2..this many token rows on CPU run their linear layers as ``(W @ x.T).T`` (see
#: :func:`few_row_linears`); 1 row keeps ``F.linear`` (its matrix-vector kernel is the fast one)
FEW_ROWS = 64


def _few_row_linear(module: Any, x: Any) -> Any:
    """``module``'s output, computed as ``(W @ x.T).T`` when ``x`` holds 2..:data:`FEW_ROWS` rows
    of a float32/float64 CPU tensor without autograd (the measured case; bfloat16 and half keep
    their own kernels), else by ``F.linear`` (the module's own forward)."""
    import torch

    weight, bias = module.weight, module.bias
    rows = x.numel() // x.shape[-1] if x.dim() and x.shape[-1] else 0
    if not 2 <= rows <= FEW_ROWS or x.device.type != "cpu" or x.dtype != weight.dtype \
            or x.dtype not in (torch.float32, torch.float64) \
            or (torch.is_grad_enabled() and weight.requires_grad):
        return torch.nn.functional.linear(x, weight, bias)
    out = torch.mm(weight, x.reshape(rows, x.shape[-1]).t()).t().contiguous()
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


@contextlib.contextmanager
def few_row_linears(modules: Sequence[Any]) -> Iterator[None]:
    """While it is open, every ``torch.nn.Linear`` of ``modules`` (exactly that class: quantised
    or adapter subclasses keep their own forward) computes a few rows as ``(W @ x.T).T``.

    Why: on CPU the BLAS kernel ``F.linear`` reaches for ``x @ W.T`` with 2-64 rows reads the
    weights at about half the memory bandwidth of its one-row kernel, while ``W @ x.T`` runs at the
    one-row speed. A decoding step is bound by reading the weights, so a forward of a few rows
    (a tree search's batched extend, a short prompt) cost up to twice one row. Measured on the
    2-core dev machine (MKL 2024.2, AVX2), SmolLM2-135M's 210 body matrices from memory: 1 row
    66 ms; 2 rows 139 ms as ``F.linear``, 62 ms as ``W @ x.T``; 4 rows 165 vs 66 ms; the 49,152-row
    output layer at 2 rows 45 vs 12 ms. The same products, summed in another order: float32
    rounding differs (~1e-5 on SmolLM2's log-probabilities), nothing else. Instance attributes
    are set on entry and removed on exit; a module whose instance already has a ``forward`` is
    left alone."""
    import functools

    import torch

    patched = [m for m in modules if type(m) is torch.nn.Linear and "forward" not in m.__dict__]
    for module in patched:  # the instance dict directly: Module.__setattr__ costs ~8 us a module
        module.__dict__["forward"] = functools.partial(_few_row_linear, module)
    try:
        yield
    finally:
        for module in patched:
            module.__dict__.pop("forward", None)


def _plain_layers(cache: Any) -> bool:
    """True for a DynamicCache whose layers are all plain ``DynamicLayer`` (they grow by
    concatenation, so their tensors can be shared without a copy)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    layers = getattr(cache, "layers", None)
    return type(cache) is DynamicCache and bool(layers) and all(
        type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


def _dynamic_cache(keys: Sequence[Any], values: Sequence[Any]) -> Any:
    """A DynamicCache over these tensors, without copying them (its constructor would)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache()
    cache.layers = []
    for k, v in zip(keys, values):
        layer = DynamicLayer()
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
        cache.layers.append(layer)
    return cache


def _plain_head(model: Any) -> bool:
    """True when the logits are the output layer (a Linear) of the last hidden state and nothing
    after it: no soft-capping (Gemma 2/3), no logit scale (Cohere, Granite)."""
    import torch

    cfg = model.config
    if getattr(cfg, "final_logit_softcapping", None) is not None or getattr(cfg, "logit_scale", None) \
            is not None or getattr(cfg, "logits_scaling", 1) not in (None, 1, 1.0):
        return False
    head = model.get_output_embeddings()
    return type(head) is torch.nn.Linear


def is_causal_lm(model: Any) -> bool:
    name = type(model).__name__
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return head is not None and ("ForCausalLM" in name or name.endswith("LMHeadModel"))


def wrap_language_model(model: Any, tokenizer: Tokenizer, runtime: Runtime) -> HFCausalLM | None:
    """An :class:`HFCausalLM` for causal LMs, ``None`` for other models (encoders)."""
    return HFCausalLM(model, tokenizer, runtime) if is_causal_lm(model) else None


class HFCausalLM(LanguageModel):
    """Wraps a transformers ``*ForCausalLM`` (any architecture) without copying it.

    Log-probabilities are computed in float32 (float64 if the model runs in
    float64) and stay on the model's device.
    """

    def __init__(self, model: Any, tokenizer: Tokenizer, runtime: Runtime, name: str = "hf") -> None:
        super().__init__()
        self.model = model.eval()
        self._tokenizer = tokenizer
        self.runtime = runtime
        self.name = name
        params = inspect.signature(type(model).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        cfg = model.config
        self._context = int(getattr(cfg, "max_position_embeddings", None)
                            or getattr(cfg, "n_positions", None) or 2048)
        self._vocab = int(model.get_output_embeddings().weight.shape[0])
        self._plain_head = _plain_head(model)
        #: linear layers of the model computed by :func:`few_row_linears` in forwards of a few rows
        #: (on CPU); set to ``False`` to use ``F.linear`` everywhere
        self.few_row_linears = True
        if tokenizer.vocab_size > self._vocab:
            raise InputError(
                f"tokenizer has {tokenizer.vocab_size} ids but the model only {self._vocab} output rows",
                component=f"language model '{name}'", hint="pair the model with its own tokenizer")

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def _linear_mode(self, rows: int) -> Any:
        """:func:`few_row_linears` over the model's linear layers for a decoding forward of
        ``rows`` token rows (2..:data:`FEW_ROWS`) on CPU (``few_row_linears`` on), else nothing."""
        if self.few_row_linears and 2 <= rows <= FEW_ROWS and self.device.type == "cpu":
            # the model's modules as they are now (a transplant may have replaced its output layer)
            return few_row_linears(list(self.model.modules()))
        return contextlib.nullcontext()

    @property
    def context_length(self) -> int:
        return self._context

    @property
    def vocab_size(self) -> int:
        return self._vocab

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def _forward(self, ids: list[int], cache: Any) -> tuple[Any, Any]:
        import torch

        x = torch.tensor([ids], dtype=torch.long, device=self.device)
        with torch.inference_mode(), self._linear_mode(len(ids)):
            out = self.model(input_ids=x, use_cache=True, logits_to_keep=1,
                             **{self._cache_kw: cache})
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += len(ids)
        new_cache = out.get("cache", None) if "cache" in out else out.past_key_values
        return self.log_softmax(out.logits[0, -1]), new_cache

    def start(self, ids: Sequence[int]) -> LMState:
        ids = self.check_ids(ids)
        if not ids:
            raise InputError("start() needs at least one token", component=f"language model '{self.name}'",
                             hint="start from lm.start_ids")
        logprobs, cache = self._forward(ids, None)
        ticket = next(_tickets)
        cache._tokensmith_ticket = ticket
        return LMState(tuple(ids), logprobs, cache, ticket)

    def extend(self, state: LMState, ids: Sequence[int]) -> LMState:
        if isinstance(state.cache, KVSegment):  # a shared segment is never mutated: extend a view of it
            return self.extend_batch(state, [ids])[0]
        ids = self.check_ids(ids, already=len(state.ids))
        if not ids:
            return state
        if getattr(state.cache, "_tokensmith_ticket", None) != state.ticket:
            raise StaleStateError("this state's cache was already extended by another state",
                                  component=f"language model '{self.name}'",
                                  hint="call lm.fork(state) before extending one state twice")
        logprobs, cache = self._forward(ids, state.cache)
        ticket = next(_tickets)
        cache._tokensmith_ticket = ticket
        return LMState(state.ids + tuple(ids), logprobs, cache, ticket)

    def fork(self, state: LMState) -> LMState:
        if isinstance(state.cache, KVSegment):
            return LMState(state.ids, state.logprobs, state.cache, state.ticket)
        self._check_fresh(state, "fork")
        # DynamicLayer.update concatenates (it never writes into its tensors), so a fork can share
        # them: whichever branch is extended first gets new tensors and the other keeps the old
        cache = _dynamic_cache([layer.keys for layer in state.cache.layers],
                               [layer.values for layer in state.cache.layers]) \
            if _plain_layers(state.cache) else copy.deepcopy(state.cache)
        ticket = next(_tickets)
        cache._tokensmith_ticket = ticket
        return LMState(state.ids, state.logprobs, cache, ticket)

    def _check_fresh(self, state: LMState, what: str) -> None:
        if getattr(state.cache, "_tokensmith_ticket", None) != state.ticket:
            raise StaleStateError(f"cannot {what} a state whose cache was already extended",
                                  component=f"language model '{self.name}'",
                                  hint=f"{what} before extending")

    def extend_batch(self, state: LMState, continuations: Sequence[Sequence[int]], *,
                     defer: Sequence[bool] | None = None) -> list[LMState]:
        """One right-padded forward of every continuation over ``state``'s KV cache (see
        :meth:`LanguageModel.extend_batch`). The new states hold a :class:`KVSegment` each: their
        own continuation's keys and values, sharing ``state``'s as their parent, so branching
        costs no copy of the prefix (extending such a state reads the shared chain; forking it
        is free). ``state`` itself is left as it was.

        Rows with ``defer`` set skip the output layer (on CPU it costs more for a few rows than
        for one): their states keep the last token's hidden state (``d`` floats, not a
        vocabulary-sized row) and :meth:`with_logprobs` applies the output layer to it later.
        Only for models whose logits are the output layer of that hidden state (no soft-capping
        or scaling after it); for the others ``defer`` is ignored."""
        import torch

        if not isinstance(state.cache, KVSegment) and not _plain_layers(state.cache):
            return super().extend_batch(state, continuations, defer=defer)  # a cache we cannot share
        component = f"language model '{self.name}'"
        if isinstance(continuations, (str, bytes)) or not isinstance(continuations, Sequence):
            raise InputError(f"continuations must be a list of token-id lists, got "
                             f"{type(continuations).__name__}", component=component,
                             hint="pass [[id, ...], ...]")
        conts = [self.check_ids(c, already=len(state.ids)) for c in continuations]
        check_defer(defer, len(conts), component)
        if isinstance(state.cache, KVSegment):
            base = state.cache
        else:
            self._check_fresh(state, "extend")
            base = KVSegment(None, tuple(layer.keys for layer in state.cache.layers),
                             tuple(layer.values for layer in state.cache.layers))
        live = [i for i, c in enumerate(conts) if c]
        out: list[LMState] = [LMState(state.ids, state.logprobs, base, 0)] * len(conts)
        if not live:
            return out
        keys, values = base.full()
        n, width, past = len(live), max(len(conts[i]) for i in live), base.length
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        x = torch.full((n, width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((n, past + width), dtype=torch.long, device=self.device)
        mask[:, :past] = 1
        for row, i in enumerate(live):
            x[row, : len(conts[i])] = torch.tensor(conts[i], dtype=torch.long)
            mask[row, past: past + len(conts[i])] = 1
        cache = _dynamic_cache([k.expand(n, -1, -1, -1) for k in keys],
                               [v.expand(n, -1, -1, -1) for v in values])
        lazy = [bool(defer and defer[i]) and self._plain_head for i in live]
        # the output layer sees only the rows needed now (a pre-hook on it keeps the others'
        # hidden states and hands it those rows alone); logits row j is the j-th such row
        keep = [row for row, d in enumerate(lazy) if not d]
        at = {row: j for j, row in enumerate(keep)}
        hidden: list[Any] = []
        hook = None
        if any(lazy):
            def only_needed(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
                hidden.append(args[0])
                return (args[0][keep], *args[1:])

            hook = self.model.get_output_embeddings().register_forward_pre_hook(only_needed)
        try:
            with torch.inference_mode(), self._linear_mode(x.numel()):
                res = self.model(input_ids=x, attention_mask=mask, use_cache=True,
                                 **{self._cache_kw: cache})
        finally:
            if hook is not None:
                hook.remove()
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += sum(len(conts[i]) for i in live)
        grown = res.get("cache", None) if "cache" in res else res.past_key_values
        if any(lazy) and not hidden:  # the forward did not go through the output module: all rows have logits
            lazy, at = [False] * len(live), {row: row for row in range(len(live))}
        for row, i in enumerate(live):
            end = past + len(conts[i])
            own_k = tuple(layer.keys[row: row + 1, :, past:end].clone() for layer in grown.layers)
            own_v = tuple(layer.values[row: row + 1, :, past:end].clone() for layer in grown.layers)
            seg = KVSegment(base, own_k, own_v)
            if seg.depth > MAX_SEGMENT_DEPTH:  # one copy now and then keeps the chain short
                seg = KVSegment(None, *seg.full())
            if lazy[row]:
                seg.hidden = hidden[0][row, len(conts[i]) - 1].clone()
                logprobs = None
            else:
                logprobs = self.log_softmax(res.logits[at[row], len(conts[i]) - 1])
            out[i] = LMState(state.ids + tuple(conts[i]), logprobs, seg, 0)
        return out

    def with_logprobs(self, state: LMState) -> LMState:
        """A deferred row of :meth:`extend_batch`: the output layer applied to its hidden state
        (the same computation the forward would have made for that row)."""
        import torch

        if state.logprobs is not None:
            return state
        hidden = getattr(state.cache, "hidden", None)
        if hidden is None:
            return super().with_logprobs(state)
        with torch.inference_mode():
            logits = self.model.get_output_embeddings()(hidden[None, None])[0, -1]
        self.counters["head_rows"] = self.counters.get("head_rows", 0) + 1
        return LMState(state.ids, self.log_softmax(logits), state.cache, state.ticket)

    def logprobs_batch(self, sequences: Sequence[Sequence[int]]) -> list[Any]:
        import torch

        component = f"language model '{self.name}'"
        if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Iterable):
            raise InputError(f"expected a list of token-id sequences, got {type(sequences).__name__}",
                             component=component, hint="pass [[id, ...], ...]")
        seqs = [self.check_ids(s) for s in sequences]
        if not seqs:
            return []
        if not all(seqs):
            raise InputError(f"sequence {seqs.index([])} is empty: there is nothing to condition on",
                             component=component, hint="start each sequence with lm.start_ids")
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        x = torch.full((len(seqs), width), pad, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=self.device)
        for row, s in enumerate(seqs):
            x[row, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[row, : len(s)] = 1
        with torch.inference_mode():
            out = self.model(input_ids=x, attention_mask=mask, use_cache=False)
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += sum(len(s) for s in seqs)
        lp = self.log_softmax(out.logits)
        return [lp[row, : len(s)] for row, s in enumerate(seqs)]

    def logits_with_grad(self, input_ids: Any, attention_mask: Any = None) -> Any:
        """Logits ``[batch, seq, vocab]`` with autograd (see
        :meth:`LanguageModel.logits_with_grad`): one forward of the wrapped model, no KV cache,
        in the model's current mode."""
        import torch

        component = f"language model '{self.name}'"
        ids = self._id_batch(input_ids, "input_ids", component)
        if int(ids.min()) < 0 or int(ids.max()) >= self._vocab:
            raise InputError(f"input_ids hold ids outside [0, {self._vocab})", component=component,
                             hint="encode text with lm.tokenizer.encode(text).ids")
        if ids.shape[1] > self._context:
            raise ContextLengthError(f"{ids.shape[1]} tokens exceed the context length {self._context}",
                                     component=component, hint="shorten the sequences")
        if attention_mask is not None:
            attention_mask = self._id_batch(attention_mask, "attention_mask", component)
            if attention_mask.shape != ids.shape:
                raise InputError(f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids "
                                 f"{tuple(ids.shape)}", component=component,
                                 hint="one mask entry per token: 1 for real tokens, 0 for padding")
        with torch.enable_grad():
            mask = None if attention_mask is None else attention_mask.to(self.device)
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask, use_cache=False)
        self.counters["forward_calls"] += 1
        self.counters["forward_tokens"] += int(ids.numel() if mask is None else mask.sum())
        return out.logits

    @staticmethod
    def _id_batch(value: Any, what: str, component: str) -> Any:
        import torch

        if isinstance(value, torch.Tensor):
            tensor = value
        else:
            listable = isinstance(value, Iterable) and not isinstance(value, (str, bytes))
            rows = list(value) if listable else None
            if not rows or any(isinstance(r, (str, bytes)) or not isinstance(r, Iterable) for r in rows):
                raise InputError(f"{what} must be a 2-D tensor or a list of id lists, got {value!r:.60}",
                                 component=component, hint="pass [[id, ...], ...] of equal lengths")
            rows = [list(r) for r in rows]
            if len({len(r) for r in rows}) != 1 or not all(type(i) is int for r in rows for i in r):
                raise InputError(f"{what} rows must be equal-length lists of ints", component=component,
                                 hint="pad the rows and pass an attention_mask")
            tensor = torch.tensor(rows, dtype=torch.long)
        if tensor.dim() != 2 or 0 in tensor.shape or tensor.dtype.is_floating_point or tensor.is_complex() \
                or (tensor.dtype == torch.bool and what != "attention_mask"):
            raise InputError(f"{what} must be a non-empty 2-D integer tensor [batch, seq], got shape "
                             f"{tuple(tensor.shape)} of {tensor.dtype}", component=component)
        return tensor.long()
