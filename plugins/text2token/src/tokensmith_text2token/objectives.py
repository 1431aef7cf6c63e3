"""Text2Token as tokensmith components (An et al., 2025, arXiv 2510.10224).

- ``text2token`` (objective, a :class:`tokensmith.Loss`): KL(π(x) ‖ q(·|x)) with
  q(·|x) = softmax(W_U e(x)) of the pooled embedding (see :mod:`tokensmith_text2token.targets`),
  averaged over the batch's texts. Stage 1: π = π_data (the text's own TF-IDF-filtered tokens);
  stage 2: π = (1 − w)·π_data + w·π_model, π_model the top-k of a frozen copy of the stage-1
  model (w = ``model_weight``; w = 1 is model-derived targets alone).
- ``text2token`` (recipe): the two-stage run. Before training it fits the data-driven filter
  on the run's own training sequences (document frequencies) and the tokenizer (the vocabulary
  filter); at step ``stage1_steps`` it freezes a copy of the model and switches the loss to
  stage 2.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from tokensmith import (
    ConfigError,
    IncompatibleComponentsError,
    Loss,
    Recipe,
    positive_int,
    probability,
    unit_interval,
)

from .targets import (
    COMPONENT,
    POOLINGS,
    check_distribution,
    content_vocabulary,
    data_driven_targets,
    document_frequency,
    idf,
    kl_divergence,
    model_derived_targets,
    pool_logits,
)

RECIPE = "recipe 'text2token'"


def _mask(batch: Mapping[str, Any]) -> Any:
    import torch

    mask = batch.get("attention_mask") if hasattr(batch, "get") else None
    return torch.ones_like(batch["input_ids"]) if mask is None else mask


def _logits(outputs: Any) -> Any:
    return outputs.logits if hasattr(outputs, "logits") else outputs


@attrs.define(eq=False)
class Text2Token(Loss):
    """Token target prediction: the mean over the batch's texts of KL(π(x) ‖ softmax(W_U e(x))),
    e(x) pooled over the text's tokens (W_U e(x) is the pooled logits: the LM head is linear)."""

    name = "text2token"
    pooling: str = attrs.field(default="mean", validator=attrs.validators.in_(POOLINGS), metadata={
        "doc": "how e(x) pools the last hidden states: 'mean' over the text's tokens or the 'last' token"})
    max_df: float = attrs.field(default=0.5, validator=probability, metadata={
        "doc": "the frequency filter: a token in more than this share of the training texts is no "
               "data-driven target, in (0, 1]"})
    stopwords: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "also drop English stopwords from the data-driven targets (specials and tokens without "
               "a letter or digit always are)"})
    top_k: int = attrs.field(default=32, validator=positive_int, metadata={
        "doc": "stage 2: the k most probable tokens of the frozen model's q(.|x) form pi_model"})
    model_weight: float = attrs.field(default=0.5, validator=unit_interval, metadata={
        "doc": "stage 2: pi = (1 - w) pi_data + w pi_model, w in [0, 1] (1: model-derived targets alone)"})
    ctx: Any = attrs.field(default=None, repr=False, metadata={
        "doc": "the build context (its tokenizer gives the vocabulary filter)"})
    stage: int = attrs.field(default=1, init=False)
    _keep: Any = attrs.field(default=None, init=False, repr=False)
    _idf: Any = attrs.field(default=None, init=False, repr=False)
    _frozen: Any = attrs.field(default=None, init=False, repr=False)
    n_documents: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        tokenizer = getattr(self.ctx, "tokenizer", None)
        if tokenizer is not None:
            self.set_vocabulary(tokenizer)

    # -- fitting ---------------------------------------------------------------------

    def set_vocabulary(self, tokenizer: Any) -> Text2Token:
        """The content-token filter of ``tokenizer`` (specials, punctuation/format, stopwords)."""
        import torch

        self._keep = torch.tensor(content_vocabulary(tokenizer, stopwords=self.stopwords), dtype=torch.bool)
        return self

    def fit(self, sequences: Iterable[Sequence[int]], tokenizer: Any = None) -> Text2Token:
        """Document frequencies over the training ``sequences`` (token id lists): the ``max_df``
        filter and the idf weights. ``tokenizer`` sets the vocabulary filter (else the build
        context's). Returns self."""
        if tokenizer is not None:
            self.set_vocabulary(tokenizer)
        if self._keep is None:
            raise IncompatibleComponentsError("no tokenizer: the data-driven targets need the vocabulary",
                                              component=COMPONENT, hint="fit(sequences, tokenizer)")
        df, n = document_frequency(sequences, int(self._keep.shape[0]))
        self._idf = idf(df, n).masked_fill(df / n > self.max_df, 0.0)
        self.n_documents = n
        return self

    @property
    def fitted(self) -> bool:
        return self._idf is not None

    def allowed(self) -> Any:
        """Per token id, whether it can be a data-driven target (content token under the filter)."""
        self._require_fit()
        return self._keep & (self._idf > 0)

    def target_weights(self) -> Any:
        """Per token id, the data-driven weight: idf where :meth:`allowed`, else 0 (float64, (V,))."""
        return self.allowed().double() * self._idf

    def _require_fit(self) -> None:
        if self._idf is None:
            raise IncompatibleComponentsError(
                "the data-driven targets are not fitted: they need the training corpus's document "
                "frequencies", component=COMPONENT,
                hint="add [recipe] type = \"text2token\" (it fits on the run's training data) or call "
                     ".fit(token_id_sequences, tokenizer) before training")

    # -- stages ----------------------------------------------------------------------

    def start_stage2(self, model: Any) -> Text2Token:
        """Freeze a copy of ``model`` (the stage-1 model) as the source of π_model; returns self."""
        frozen = copy.deepcopy(model)
        frozen.eval()
        frozen.requires_grad_(False)
        self._frozen, self.stage = frozen, 2
        return self

    @property
    def frozen(self) -> Any:
        return self._frozen

    # -- targets and loss ------------------------------------------------------------

    def data_targets(self, batch: Mapping[str, Any]) -> Any:
        """π_data of every row of the batch, (B, V)."""
        self._require_fit()
        ids = batch["input_ids"]
        keep = self._keep.to(ids.device)
        if ids.numel() and int(ids.max()) >= keep.shape[0]:
            raise IncompatibleComponentsError(
                f"token id {int(ids.max())} is outside the fitted vocabulary of {keep.shape[0]}",
                component=COMPONENT, hint="fit on the tokenizer the model trains with")
        return data_driven_targets(ids, _mask(batch), keep, self._idf.to(ids.device))

    def model_targets(self, batch: Mapping[str, Any]) -> Any:
        """π_model of every row: the frozen model's top-k, without gradient, (B, V)."""
        from .embed import forward

        if self._frozen is None:
            raise IncompatibleComponentsError("stage 2 has no frozen model", component=COMPONENT,
                                              hint="call .start_stage2(model) (the recipe does, at "
                                                   "stage1_steps)")
        ids, mask = batch["input_ids"], _mask(batch)
        if next(self._frozen.parameters()).device != ids.device:
            self._frozen.to(ids.device)
        logits = _logits(forward(self._frozen, ids, mask))
        return model_derived_targets(pool_logits(logits.float(), mask, self.pooling), self.top_k)

    def targets(self, batch: Mapping[str, Any]) -> Any:
        """π(x) of the current stage, (B, V); every row a distribution."""
        target = self.data_targets(batch)
        if self.stage == 2 and self.model_weight > 0:
            target = (1 - self.model_weight) * target + self.model_weight * self.model_targets(batch)
        check_distribution(target)
        return target

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        logits = _logits(outputs)
        target = self.targets(batch)
        if target.shape[-1] != logits.shape[-1]:
            raise IncompatibleComponentsError(
                f"the targets cover {target.shape[-1]} tokens, the model's logits {logits.shape[-1]}",
                component=COMPONENT, hint="fit on the tokenizer of the model being trained")
        pooled = pool_logits(logits, _mask(batch).to(logits.device), self.pooling)
        return kl_divergence(target.to(logits.device), pooled).mean()


def _text2token_loss(objective: Any) -> Text2Token:
    loss = getattr(objective, "loss", objective)
    if not isinstance(loss, Text2Token):
        raise IncompatibleComponentsError(
            f"the run's loss is {getattr(loss, 'name', type(loss).__name__)!r}, not text2token",
            component=RECIPE, hint="add [[objective]] type = \"text2token\" to the recipe")
    return loss


@attrs.define
class Text2TokenRecipe(Recipe):
    """Text2Token's two-stage run: stage 1 trains on data-driven targets (fitted on the run's
    training sequences), stage 2 from step ``stage1_steps`` on the mixture with the frozen stage-1
    model's top-k targets."""

    name = "text2token"
    stage1_steps: int | None = attrs.field(default=None, validator=attrs.validators.optional(
        attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(0))), metadata={
        "doc": "optimizer steps of stage 1 (data-driven targets); the rest are stage 2. Default: half "
               "of [train] steps; 0: model-derived from the start (the untrained model frozen)"})

    def boundary(self, ctx: Any) -> int:
        steps = int(getattr(ctx.settings, "steps", 0) or 0)
        return steps // 2 if self.stage1_steps is None else self.stage1_steps

    def prepare(self, model: Any, ctx: Any) -> Any:
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None or getattr(head, "bias", None) is not None:
            raise IncompatibleComponentsError(
                f"{type(model).__name__} has {'no LM head' if head is None else 'an LM head with a bias'}: "
                "Text2Token projects the pooled embedding with a linear, bias-free W_U",
                component=RECIPE,
                hint="use a causal LM whose LM head is a bias-free linear map (Llama, SmolLM2)")
        accumulation = int(getattr(ctx.settings, "grad_accumulation", 1) or 1)
        if accumulation != 1:
            raise ConfigError(f"[train] grad_accumulation = {accumulation}: the text2token loss is a mean "
                              "over a micro-batch's texts, not scaled for accumulation", component=RECIPE,
                              hint="use grad_accumulation = 1 and a larger batch_size")
        steps = int(getattr(ctx.settings, "steps", 0) or 0)
        if self.stage1_steps is not None and self.stage1_steps > steps:
            raise ConfigError(f"stage1_steps = {self.stage1_steps} is more than [train] steps = {steps}",
                              component=RECIPE, hint="stage1_steps <= steps (steps: the two stages together)")
        return model

    def callbacks(self, ctx: Any) -> list[Any]:
        from transformers import TrainerCallback

        loss = _text2token_loss(getattr(ctx.trainer, "objective", None))
        if not loss.fitted:
            loss.fit((row["input_ids"] for row in ctx.trainer.train_dataset), ctx.tokenizer)
        boundary = self.boundary(ctx)

        class Stages(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step > boundary:
                    raise ConfigError(
                        f"resuming at step {state.global_step}, inside stage 2 (from step {boundary}): the "
                        "frozen stage-1 model is not in the checkpoint", component=RECIPE,
                        hint=f"resume from a checkpoint at or before step {boundary}")
                if state.global_step == boundary:
                    loss.start_stage2(ctx.model)

            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step == boundary and loss.stage == 1:
                    loss.start_stage2(ctx.model)

        return [Stages()]
