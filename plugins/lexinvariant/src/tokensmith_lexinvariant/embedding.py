"""Lexinvariant Language Models (Huang, Zelikman, Chen, Wu, Valiant, Liang; NeurIPS 2023;
arXiv 2305.16349): per-sequence random Gaussian embeddings, the lexinvariant output layer, and
the semi-lexinvariant regulariser.

A lexinvariant LM has no fixed token embedding. For every sequence ``s`` a fresh matrix
``E_s in R^{|V| x d}`` with i.i.d. ``N(0, sigma^2)`` entries is drawn; token ``v`` is ``E_s[v]``
everywhere in ``s`` and the next-token logits are scored against the same vectors,
``logits_v = <h, E_s[v]>``, so the model can only use the co-occurrence and repetition of tokens
inside its context. Relabelling the vocabulary by a permutation ``pi`` together with
``E' = E o pi^{-1}`` leaves every logit the same up to ``pi`` (the paper's equivariance).

The modules here are installed into a transformers causal LM through the core
:class:`tokensmith.EmbeddingProvider` interface: the input embedding draws ``E_s`` per batch
row in ``forward`` and keeps it, and the output head (called by the same ``forward`` on the
hidden states of the same batch) scores against it. That hand-off is why the head holds a
reference to its embedding rather than weights of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import attrs

from tokensmith import (
    Change,
    ConfigError,
    EmbeddingProvider,
    IncompatibleComponentsError,
    InputError,
    ModelReport,
    Recipe,
    Tokenizer,
    TrainContext,
    describe_module,
    positive,
    unit_interval,
)

_OPTIONAL_POSITIVE = attrs.validators.optional(positive)


def _optional_seed(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (type(value) is not int or value < 0):
        raise ConfigError(f"{attribute.name} must be an int >= 0 or None, got {value!r}",
                          hint="leave it unset to draw from torch's global generator (seeded by the run)")


def _module_classes() -> tuple[type, type, type, type]:
    """The torch modules, defined on first use so that importing this module needs no torch."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import torch
    from torch import nn

    def draw(rows: int, vocab: int, dim: int, sigma: float, like: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
        # One independent N(0, sigma^2) table per batch row (step 1 of the algorithm). A seeded
        # generator lives on the CPU, so the draw does too and is then moved: the same seed gives
        # the same tables on every device.
        if generator is not None:
            table = torch.randn(rows, vocab, dim, generator=generator, dtype=torch.float32)
            return (table * sigma).to(device=like.device, dtype=like.dtype)
        return torch.randn(rows, vocab, dim, device=like.device, dtype=like.dtype) * sigma

    def lookup(table: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        # out[b, t] = table[b, input_ids[b, t]]: the same token gets the same vector within a row
        return table.gather(1, input_ids.unsqueeze(-1).expand(-1, -1, table.shape[-1]))

    class LexinvariantEmbedding(nn.Module):
        """Ids ``(B, T)`` -> vectors ``(B, T, d)`` from a fresh random table per batch row."""

        def __init__(self, vocab_size: int, dim: int, sigma: float, seed: int | None) -> None:
            super().__init__()
            self.num_embeddings, self.embedding_dim, self.sigma = vocab_size, dim, sigma
            self.generator = None if seed is None else torch.Generator().manual_seed(seed)
            # a buffer only to follow the model's device and dtype (``.to``), never trained
            self.register_buffer("anchor", torch.zeros(()), persistent=False)
            self.table: torch.Tensor | None = None
            self._fixed: torch.Tensor | None = None

        @contextlib.contextmanager
        def fixed(self, table: torch.Tensor) -> Iterator[None]:
            """Use ``table`` (``(V, d)`` for every row, or ``(B, V, d)``) instead of drawing one:
            the explicit ``E_s`` of the equivariance property, or the same table for every
            incremental step of a generation."""
            if table.shape[-2:] != (self.num_embeddings, self.embedding_dim):
                raise InputError(f"lexinvariant: a fixed table must be (..., {self.num_embeddings}, "
                                 f"{self.embedding_dim}), got {tuple(table.shape)}")
            previous, self._fixed = self._fixed, table
            try:
                yield
            finally:
                self._fixed = previous

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            if input_ids.dim() != 2:
                raise InputError("lexinvariant: input_ids must be (batch, length), got "
                                 f"{tuple(input_ids.shape)}")
            low, high = (int(input_ids.min()), int(input_ids.max())) if input_ids.numel() else (0, 0)
            if low < 0 or high >= self.num_embeddings:
                raise InputError(f"lexinvariant: token ids must lie in [0, {self.num_embeddings}), got "
                                 f"[{low}, {high}]")
            rows = input_ids.shape[0]
            if self._fixed is not None:
                fixed = self._fixed.to(device=self.anchor.device, dtype=self.anchor.dtype)
                table = fixed.expand(rows, -1, -1) if fixed.dim() == 2 else fixed
                if table.shape[0] != rows:
                    raise InputError(f"lexinvariant: the fixed table has {table.shape[0]} rows for a batch "
                                     f"of {rows}")
            else:
                table = draw(rows, self.num_embeddings, self.embedding_dim, self.sigma, self.anchor,
                             self.generator)
            self.table = table
            return lookup(table, input_ids)

        def extra_repr(self) -> str:
            return f"{self.num_embeddings}, {self.embedding_dim}, sigma={self.sigma:g}, per-sequence random"

    class LexinvariantHead(nn.Module):
        """The lexinvariant output layer (step 2): ``logits[b, t, v] = <h[b, t], E_b[v]>`` with
        the table its embedding drew for the same batch."""

        def __init__(self, embedding: LexinvariantEmbedding) -> None:
            super().__init__()
            # not a submodule: the embedding is already the model's input embeddings
            object.__setattr__(self, "embedding", embedding)
            self.out_features = embedding.num_embeddings

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            table = self.embedding.table
            if table is None or table.shape[0] != hidden.shape[0]:
                raise InputError("lexinvariant: the output layer ran without a table for this batch; the "
                                 "model's forward must embed the same batch first (no cached generation "
                                 "without `fixed(table)`)")
            return torch.einsum("btd,bvd->btv", hidden, table)

    class SemiLexinvariantEmbedding(nn.Module):
        """The learned embedding, except that in training each sequence is, with probability ``p``,
        embedded with a fresh random table instead (semi-lexinvariance as a regulariser)."""

        def __init__(self, base: nn.Module, p: float, sigma: float | None, seed: int | None) -> None:
            super().__init__()
            self.base, self.p, self.sigma = base, p, sigma
            self.num_embeddings, self.embedding_dim = base.weight.shape
            self.generator = None if seed is None else torch.Generator().manual_seed(seed)
            self.rows: torch.Tensor | None = None
            self.table: torch.Tensor | None = None

        @property
        def weight(self) -> torch.Tensor:
            return self.base.weight

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            out = self.base(input_ids)
            self.rows = self.table = None
            if not self.training or self.p == 0.0:
                return out
            rows = input_ids.shape[0]
            if self.generator is not None:
                chosen = torch.rand(rows, generator=self.generator) < self.p
            else:
                chosen = torch.rand(rows) < self.p
            if not bool(chosen.any()):
                return out
            index = chosen.nonzero().squeeze(1).to(out.device)
            # sigma unset: the learned table's current scale, so a random sequence looks like a
            # learned one to the first layer
            sigma = self.sigma if self.sigma is not None else float(self.base.weight.detach().std())
            table = draw(len(index), self.num_embeddings, self.embedding_dim, sigma, out, self.generator)
            self.rows, self.table = index, table
            out = out.clone()
            out[index] = lookup(table, input_ids[index])
            return out

    class SemiLexinvariantHead(nn.Module):
        """The model's own head, except on the sequences its embedding made lexinvariant, where
        the logits are scored against their random table."""

        def __init__(self, base: nn.Module, embedding: SemiLexinvariantEmbedding) -> None:
            super().__init__()
            self.base = base
            object.__setattr__(self, "embedding", embedding)

        @property
        def weight(self) -> torch.Tensor:
            return self.base.weight

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            logits = self.base(hidden)
            rows, table = self.embedding.rows, self.embedding.table
            if rows is None:
                return logits
            logits = logits.clone()
            logits[rows] = torch.einsum("btd,bvd->btv", hidden[rows], table).to(logits.dtype)
            return logits

    _CLASSES = (LexinvariantEmbedding, LexinvariantHead, SemiLexinvariantEmbedding, SemiLexinvariantHead)
    return _CLASSES


_CLASSES: tuple[type, type, type, type] | None = None


def _check_model(model: Any, tokenizer: Tokenizer | None, component: str) -> tuple[int, int]:
    """``(rows, width)`` of the model's input embeddings; a tokenizer with more ids than rows is an error."""
    get = getattr(model, "get_input_embeddings", None)
    old = get() if callable(get) else None
    weight = getattr(old, "weight", None)
    if weight is None or weight.dim() != 2:
        raise IncompatibleComponentsError(
            f"{component}: the model has no (vocab, width) input embedding table",
            hint="use a transformers causal LM (get_input_embeddings / set_output_embeddings)")
    if not callable(getattr(model, "set_output_embeddings", None)) or model.get_output_embeddings() is None:
        raise IncompatibleComponentsError(f"{component}: the model has no output head to make lexinvariant",
                                          hint="use a causal LM with get_output_embeddings()")
    rows, width = weight.shape
    if tokenizer is not None and tokenizer.vocab_size > rows:
        raise IncompatibleComponentsError(
            f"{component}: the tokenizer has {tokenizer.vocab_size} ids but the model only {rows} "
            "embedding rows",
            hint="resize the model's embeddings to the tokenizer first")
    return int(rows), int(width)


def _untie(model: Any, changes: list[Change]) -> None:
    # transformers re-ties a tied head to the input table on save/load; the new head has no
    # weight of its own, so the model must say it is untied
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False
        changes.append(Change("config.tie_word_embeddings", "True", "False"))


@attrs.define
class Lexinvariant(EmbeddingProvider):
    """Per-sequence random Gaussian embeddings and the lexinvariant output layer."""

    name = "lexinvariant"

    sigma: float | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "standard deviation of the random entries (default 1/sqrt(width): unit-norm rows on average)"})
    seed: int | None = attrs.field(default=None, validator=_optional_seed, metadata={
        "doc": "seed of the provider's own generator (default: torch's global one, which the run seeds)"})

    def build(self, model: Any, tokenizer: Tokenizer | None) -> Any:
        rows, width = _check_model(model, tokenizer, "embedding 'lexinvariant'")
        embedding_cls = _module_classes()[0]
        sigma = self.sigma if self.sigma is not None else width ** -0.5
        module = embedding_cls(rows, width, sigma, self.seed)
        weight = model.get_input_embeddings().weight
        return module.to(device=weight.device, dtype=weight.dtype)

    def install(self, model: Any, module: Any) -> ModelReport:
        embedding_cls, head_cls, _, _ = _module_classes()
        if not isinstance(module, embedding_cls):
            raise InputError("embedding 'lexinvariant' installs a LexinvariantEmbedding, got "
                             f"{type(module).__name__}")
        changes: list[Change] = []
        _untie(model, changes)
        old_in, old_out = model.get_input_embeddings(), model.get_output_embeddings()
        model.set_input_embeddings(module)
        model.set_output_embeddings(head_cls(module))
        changes.append(Change("input_embeddings", describe_module(old_in),
                              describe_module(module) + " (no parameters)"))
        changes.append(Change("output_embeddings", describe_module(old_out), "lexinvariant head <h, E_s[v]>"))
        return ModelReport("embedding 'lexinvariant'", tuple(changes))


@attrs.define
class SemiLexinvariant(EmbeddingProvider):
    """The semi-lexinvariant regulariser around the model's own embeddings and head."""

    name = "semi-lexinvariant"

    p: float = attrs.field(default=0.2, validator=unit_interval, metadata={
        "doc": "probability that a training sequence uses a fresh random table instead of the learned one"})
    sigma: float | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "standard deviation of the random entries (default: the learned table's current std)"})
    seed: int | None = attrs.field(default=None, validator=_optional_seed, metadata={
        "doc": "seed of the regulariser's own generator (default: torch's global one, which the run seeds)"})

    def build(self, model: Any, tokenizer: Tokenizer | None) -> Any:
        _check_model(model, tokenizer, "embedding 'semi-lexinvariant'")
        embedding_cls = _module_classes()[2]
        return embedding_cls(model.get_input_embeddings(), self.p, self.sigma, self.seed)

    def install(self, model: Any, module: Any) -> ModelReport:
        _, _, embedding_cls, head_cls = _module_classes()
        if not isinstance(module, embedding_cls):
            raise InputError("embedding 'semi-lexinvariant' installs a SemiLexinvariantEmbedding, got "
                             f"{type(module).__name__}")
        old_out = model.get_output_embeddings()
        model.set_input_embeddings(module)
        # a tied head keeps sharing the learned weight through ``base``
        model.set_output_embeddings(head_cls(old_out, module))
        changes = (Change("input_embeddings", describe_module(module.base),
                          f"semi-lexinvariant (p={self.p:g})"),
                   Change("output_embeddings", describe_module(old_out), "semi-lexinvariant head"))
        return ModelReport("embedding 'semi-lexinvariant'", changes)


@attrs.define
class LexinvariantRecipe(Recipe):
    """Train a causal LM lexinvariantly: ``prepare`` installs :class:`Lexinvariant`."""

    name = "lexinvariant"

    sigma: float | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "standard deviation of the random entries (default 1/sqrt(width))"})
    seed: int | None = attrs.field(default=None, validator=_optional_seed, metadata={
        "doc": "seed of the tables' generator (default: torch's global one, seeded by the run)"})

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        Lexinvariant(sigma=self.sigma, seed=self.seed).apply(model, ctx.tokenizer)
        return model


@attrs.define
class SemiLexinvariantRecipe(Recipe):
    """Ordinary training regularised by semi-lexinvariance (``prepare`` installs
    :class:`SemiLexinvariant`)."""

    name = "semi-lexinvariant"

    p: float = attrs.field(default=0.2, validator=unit_interval, metadata={
        "doc": "probability that a training sequence uses a fresh random table"})
    sigma: float | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": "standard deviation of the random entries (default: the learned table's current std)"})
    seed: int | None = attrs.field(default=None, validator=_optional_seed, metadata={
        "doc": "seed of the regulariser's generator (default: torch's global one, seeded by the run)"})

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        SemiLexinvariant(p=self.p, sigma=self.sigma, seed=self.seed).apply(model, ctx.tokenizer)
        return model


def module_classes() -> tuple[type, type, type, type]:
    """``(LexinvariantEmbedding, LexinvariantHead, SemiLexinvariantEmbedding, SemiLexinvariantHead)``."""
    return _module_classes()
