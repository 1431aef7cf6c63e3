"""The ``tokenadapt`` embedding component and its safetensors artifacts.

Sharthak, Pahalwan, Kamath & Shirawalmath, "Tokenizer Flexibility via Heuristic Adaptation and
Supertoken Learning" (arXiv 2505.09738).

``TokenAdapt.apply(model, tokenizer)`` transplants a model from the tokenizer it was loaded with
(``ctx.model_tokenizer``) onto ``tokenizer``: the plan of :mod:`.heuristics` gives each new row,
and :func:`tokensmith.install_embeddings` resizes the model (shared rows copied exactly, an
untied head filled with the same weights from the old head, config, padding).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    EmbeddingProvider,
    IncompatibleComponentsError,
    ModelReport,
    Tokenizer,
    check_vocabulary,
    install_embeddings,
    load_artifact,
    map_shared_tokens,
    non_negative_int,
    positive,
    positive_int,
    save_artifact,
    unit_interval,
)

from .heuristics import COMPONENT, MODES, make_embedder, make_init, plan_transplant

PLUGIN = "tokensmith-tokenadapt"
ARTIFACT_VERSION = "1"


def _similarity(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not -1.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a cosine similarity in [-1, 1], got {value!r}")


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


@attrs.define
class TokenAdapt(EmbeddingProvider):
    """TokenAdapt: shared tokens copied, the others the hybrid of the local (sub-token) and
    global (auxiliary-embedding neighbour) estimates; output head the same for untied models."""

    name = "tokenadapt"

    temperature: float = attrs.field(default=0.3, validator=positive, metadata={
        "doc": "τ of both softmaxes (the paper: 0.3; 0.18-0.45 also fine)"})
    top_k: int = attrs.field(default=3, validator=positive_int, metadata={
        "doc": "k: neighbours of the global estimate"})
    weight: float = attrs.field(default=0.3, validator=unit_interval, metadata={
        "doc": "λ: share of the global estimate in the hybrid, in [0, 1] (0: local, 1: global)"})
    threshold: float = attrs.field(default=0.0, validator=_similarity, metadata={
        "doc": "neighbours with a cosine similarity below this are masked out of the global estimate"})
    mode: Literal["hybrid", "local", "global", "fvt"] = attrs.field(
        default="hybrid", validator=attrs.validators.in_(MODES), metadata={
        "doc": "hybrid (the paper), local or global only (its ablations), fvt (mean of sub-tokens)"})
    embedder: Literal["minilm", "char-ngrams"] = attrs.field(default="minilm", validator=attrs.validators.in_(
        ("minilm", "char-ngrams")), metadata={
        "doc": "the auxiliary embedder φ: MiniLM-L6 (offline package) or hashed character n-grams"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seeds the N(mean, std) fallback rows"})
    pad_to_multiple_of: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        positive_int), metadata={"doc": "round the rows up to a multiple (the paper: 128); None keeps "
                                        "the model's own padding"})
    artifact: Path | None = attrs.field(default=None, converter=_optional_path, metadata={
        "doc": "install a saved table (save_embeddings) instead of computing one; checked against the "
               "tokenizer"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def build(self, model: Any, tokenizer: Tokenizer) -> Any:
        return model.get_input_embeddings()

    def apply(self, model: Any, tokenizer: Tokenizer) -> ModelReport:
        old = self.ctx.model_tokenizer if self.ctx is not None else None
        if old is None:
            raise IncompatibleComponentsError("no model tokenizer to transplant from", component=COMPONENT,
                                              hint="build it in a pipeline, or call transplant(...)")
        return transplant(model, old, tokenizer, self)

    def plan(self, old: Tokenizer, new: Tokenizer) -> Any:
        return plan_transplant(old, new, make_embedder(self.embedder), temperature=self.temperature,
                               top_k=self.top_k, threshold=self.threshold)


def transplant(model: Any, old: Tokenizer, new: Tokenizer, settings: TokenAdapt | None = None, *,
               plan: Any = None) -> ModelReport:
    """Move ``model`` from ``old`` onto ``new`` in place with TokenAdapt (``settings``' parameters;
    a precomputed ``plan`` skips the embedder) through ``install_embeddings``."""
    settings = settings or TokenAdapt()
    if settings.artifact is not None:
        table, head = load_embeddings(settings.artifact, new)
        return install_embeddings(model, new, old_tokenizer=old, table=table, head_table=head,
                                  pad_to_multiple_of=settings.pad_to_multiple_of)
    if len(map_shared_tokens(old, new)) == new.vocab_size:
        init: Any = "mean"  # nothing to estimate (e.g. the same tokenizer): every row is copied
    else:
        plan = plan if plan is not None else settings.plan(old, new)
        if (plan.old_vocab, plan.new_vocab) != (old.vocab_size, new.vocab_size):
            raise IncompatibleComponentsError(
                f"the plan is for {plan.old_vocab} -> {plan.new_vocab} ids, the tokenizers have "
                f"{old.vocab_size} -> {new.vocab_size}", component=COMPONENT)
        init = make_init(plan.row_weights(settings.mode, settings.weight))
    return install_embeddings(model, new, old_tokenizer=old, init=init, seed=settings.seed,
                              pad_to_multiple_of=settings.pad_to_multiple_of)


# -- artifacts ---------------------------------------------------------------------------

def save_embeddings(path: str | Path, model: Any, tokenizer: Tokenizer, *,
                    config: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s input table (and an untied head) for ``tokenizer`` as a safetensors
    artifact whose metadata names the tokenizer (fingerprint, vocabulary size)."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tensors = {"embeddings": emb.detach()[: tokenizer.vocab_size]}
    check_vocabulary(tensors["embeddings"], tokenizer, component=COMPONENT, what="the embedding table")
    if head is not None and head.weight is not emb:
        tensors["head"] = head.weight.detach()[: tokenizer.vocab_size]
    meta = {"tokenizer": tokenizer.fingerprint(), "tokenizer_name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size, **(config or {})}
    return save_artifact(path, tensors, plugin=PLUGIN, version=ARTIFACT_VERSION, config=meta)


def load_embeddings(path: str | Path, tokenizer: Tokenizer) -> tuple[Any, Any]:
    """``(table, head_table or None)`` of an artifact, after checking it belongs to ``tokenizer``:
    another tokenizer's table (a different fingerprint or row count) is an
    ``IncompatibleComponentsError``."""
    tensors, meta = load_artifact(path, plugin=PLUGIN, version=ARTIFACT_VERSION)
    config = meta.get("config", {})
    if "embeddings" not in tensors:
        raise ConfigError(f"artifact {str(path)!r} holds no 'embeddings' tensor", component=COMPONENT)
    check_vocabulary(tensors["embeddings"], tokenizer, component=COMPONENT,
                     what=f"the embedding table in {str(path)!r}")
    if "head" in tensors:
        check_vocabulary(tensors["head"], tokenizer, component=COMPONENT, what=f"the head in {str(path)!r}")
    if config.get("tokenizer") != tokenizer.fingerprint():
        raise IncompatibleComponentsError(
            f"artifact {str(path)!r} was made for tokenizer {config.get('tokenizer_name')!r} "
            f"(fingerprint {str(config.get('tokenizer'))[:12]}), not {tokenizer.name!r} "
            f"({tokenizer.fingerprint()[:12]}); same size, other vocabulary", component=COMPONENT,
            hint="transplant onto this tokenizer again, or load the tokenizer the table was made for")
    return tensors["embeddings"], tensors.get("head")
