"""Training a ZeTT hypernetwork through the core recipe runner.

Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (arXiv 2405.07883), Section 3
("Hypernetwork training"): per batch, a tokenizer is sampled (:mod:`.sampler`), the batch's text
is tokenized with it, the hypernetwork predicts the embeddings of its vocabulary, the **frozen**
base LM runs on them, and the loss is the LM loss plus ``lexical_weight`` (0.5) times the
auxiliary MSE between predicted and original embeddings of the tokens the sampled vocabulary
shares with the original one. The first ``identity_steps`` steps are the MIMICK-style identity
warm-up: the hypernetwork is given original tokens (each its own single piece) and regresses their
original embeddings; the base LM is not run (the reference implementation's ``identity_train_step``
has no LM term), so warm-up steps cost one small hypernetwork forward each.

The runner owns the loop: :class:`ZeTTRecipe` wraps the base LM and a fresh hypernetwork into
:class:`ZeTTModel` in ``prepare`` (only the hypernetwork trains), the runner's data collation
gives it the batch in the original tokenization, and its ``forward`` re-tokenizes it with this
batch's sampled tokenizer. The objective :class:`ZeTTLoss` (``[[objective]] type = "zett"``)
reads the sampled tokenization's labels and the auxiliary loss from the outputs. So
``tokensmith train zett.toml`` and ``torchrun ... -m tokensmith train zett.toml`` run unchanged.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import attrs
import torch
from torch import nn
from transformers import TrainerCallback
from transformers.utils import ModelOutput

from tokensmith import (
    IGNORE_INDEX,
    ConfigError,
    ContextLengthError,
    Loss,
    Recipe,
    TrainContext,
    non_negative,
    non_negative_int,
    positive_int,
)

from .hypernet import COMPONENT, HyperNetwork, byte_index, decompose, hypernetwork_for, save_hypernetwork
from .sampler import sample_tokenizer

ARTIFACT_NAME = "hypernetwork.safetensors"


@dataclass
class ZeTTOutput(ModelOutput):
    """Logits over this batch's sampled vocabulary, the labels in that tokenization, and the
    auxiliary (lexical) loss; in an identity warm-up step only the lexical loss (``identity``)."""

    logits: torch.Tensor | None = None
    zett_labels: torch.Tensor | None = None
    lexical_loss: torch.Tensor | None = None
    identity: bool | None = None


class ZeTTModel(nn.Module):
    """The frozen base LM and the hypernetwork as one module; its trainable parameters are the
    hypernetwork's."""

    def __init__(self, base: Any, tokenizer: Any, hn: HyperNetwork, settings: ZeTTRecipe) -> None:
        super().__init__()
        self.base, self.hn, self.settings = base, hn, settings
        self.tokenizer = tokenizer
        self.by_bytes = byte_index(tokenizer)
        self.specials = set(tokenizer.special_tokens)
        self.step = 0
        self.calls = 0
        self.rank = 0
        self._decompositions: dict[bytes, tuple[int, ...]] = {}
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.base.eval()

    def train(self, mode: bool = True) -> ZeTTModel:
        # The frozen backbone runs in inference mode (no dropout), as the reference's default
        # run_backbone_in_training_mode = False; only the hypernetwork follows the Trainer's mode.
        super().train(mode)
        self.base.eval()
        return self

    # -- the batch in a tokenization -------------------------------------------------------

    def _segments(self, row: list[int]) -> list[int | bytes]:
        """A row of original ids as special ids and the byte runs between them."""
        out: list[int | bytes] = []
        run: list[bytes] = []
        table = self.tokenizer.byte_table
        for i in row:
            if i in self.specials or table[i] is None:
                if run:
                    out.append(b"".join(run))
                    run = []
                out.append(i)
            else:
                run.append(table[i])
        if run:
            out.append(b"".join(run))
        return out

    def _identity(self, rows: list[list[int]], rng: random.Random) -> list[int]:
        """The warm-up's tokens: original ids, each its own single piece. The batch's tokens plus
        other original tokens drawn uniformly up to ``identity_vocab_size`` (the reference's
        ``identity_n_subsample``; all of them when the original vocabulary is no larger)."""
        s = self.settings
        size = s.vocab_size if s.identity_vocab_size is None else s.identity_vocab_size
        used = sorted({i for r in rows for i in r})
        taken = set(used)
        rest = [i for i in range(self.tokenizer.vocab_size) if i not in taken]
        extra = max(0, size - len(used))
        return used + (rest if extra >= len(rest) else rng.sample(rest, extra))

    def _sampled(self, rows: list[list[int]], rng: random.Random
                 ) -> tuple[list[tuple[int, ...]], list[list[int]], list[int | None]]:
        s = self.settings
        segments = [self._segments(r) for r in rows]
        texts = [seg for row in segments for seg in row if isinstance(seg, bytes)]
        sampled = sample_tokenizer(texts, vocab_size=s.vocab_size, max_len=s.max_token_bytes,
                                   noise_mean=s.noise_mean, noise_std=s.noise_std, generator=rng)
        pieces = [self._decompose(t) for t in sampled.vocab]
        shared: list[int | None] = [self.by_bytes.get(t) for t in sampled.vocab]
        special_at: dict[int, int] = {}
        cache: dict[bytes, list[int]] = {}
        new_rows = []
        for row in segments:
            ids: list[int] = []
            for seg in row:
                if isinstance(seg, bytes):
                    ids.extend(sampled.tokenize(seg, cache))
                else:  # a special token is its own entry, decomposed into itself (copied in transfer)
                    if seg not in special_at:
                        special_at[seg] = len(pieces)
                        pieces.append((seg,))
                        shared.append(seg)
                    ids.append(special_at[seg])
            new_rows.append(ids)
        return pieces, new_rows, shared

    def _decompose(self, piece: bytes) -> tuple[int, ...]:
        if piece not in self._decompositions:
            self._decompositions[piece] = decompose(piece, self.tokenizer, self.by_bytes,
                                                    self.hn.surface_maxlen)
        return self._decompositions[piece]

    # -- forward -------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ZeTTOutput:
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None \
            else attention_mask.bool()
        rows = [r[m].tolist() for r, m in zip(input_ids, mask, strict=True)]
        # a different tokenizer per batch and rank, reproducible from the seed
        rng = random.Random(f"{self.settings.seed}/{self.rank}/{self.calls}")
        self.calls += 1
        if self.training and self.step < self.settings.identity_steps:
            # MIMICK-style warm-up: regress the original rows; the frozen LM is not needed
            vocab = self._identity(rows, rng)
            e_in, e_out = self.hn.embed([(i,) for i in vocab])
            old = torch.tensor(vocab, dtype=torch.long, device=e_in.device)
            return ZeTTOutput(lexical_loss=self._lexical(e_in, e_out, old), identity=True)
        pieces, new_rows, shared = self._sampled(rows, rng)
        e_in, e_out = self.hn.embed(pieces)
        e_head = e_in if e_out is None else e_out

        length = max(len(r) for r in new_rows)
        limit = getattr(getattr(self.base, "config", None), "max_position_embeddings", None)
        if limit is not None and length > limit:
            raise ContextLengthError(
                f"a sequence is {length} tokens in this batch's sampled tokenization, more than the model's "
                f"context of {limit}", component=COMPONENT,
                hint="lower [data] max_length or raise vocab_size (a larger vocabulary gives shorter "
                     "sequences)")
        device = input_ids.device
        new_ids = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long, device=device)
        new_mask = torch.zeros(len(rows), length, dtype=torch.long, device=device)
        for b, r in enumerate(new_rows):
            new_ids[b, : len(r)] = torch.tensor(r, device=device)
            labels[b, : len(r)] = new_ids[b, : len(r)]
            new_mask[b, : len(r)] = 1
        hidden = self.base.base_model(inputs_embeds=e_in[new_ids], attention_mask=new_mask).last_hidden_state
        logits = hidden @ e_head.T

        # the auxiliary loss: predicted vs original rows of the tokens the vocabulary shares
        k = torch.tensor([i for i, s in enumerate(shared) if s is not None], dtype=torch.long, device=device)
        old = torch.tensor([s for s in shared if s is not None], dtype=torch.long, device=device)
        if len(k):
            lexical = self._lexical(e_in[k], None if e_out is None else e_out[k], old)
        else:
            lexical = e_in.sum() * 0.0
        return ZeTTOutput(logits=logits, zett_labels=labels, lexical_loss=lexical, identity=False)

    def _lexical(self, e_in: torch.Tensor, e_out: torch.Tensor | None, old: torch.Tensor) -> torch.Tensor:
        """MSE of predicted rows against the original rows ``old``, measured in the hypernetwork's
        rescaled (standardised) space, so the term weighs the same whatever the scale of the
        model's embeddings (raw MSE on SmolLM2's or a tiny model's rows would be ~1e-3 next to an
        LM loss of ~5)."""
        target = self.hn.source[old]
        predicted = e_in if e_out is None else torch.cat([e_in, e_out], dim=1)
        return (((predicted - target) / self.hn.std) ** 2).mean()


def _finite(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.define
class ZeTTLoss(Loss):
    """ZeTT's objective: the causal LM loss over the batch's sampled tokenization plus
    ``lexical_weight`` times the auxiliary embedding loss (both from :class:`ZeTTModel`); in an
    identity warm-up step, the embedding regression alone."""

    name = "zett"

    lexical_weight: float = attrs.field(default=0.5, validator=non_negative, metadata={
        "doc": "weight of the auxiliary MSE between predicted and original embeddings (the paper: 0.5)"})

    def __call__(self, batch: Any, outputs: Any, *, num_items: Any = None) -> Any:
        labels = getattr(outputs, "zett_labels", None)
        if getattr(outputs, "identity", None) is True:
            # the identity warm-up's loss is the embedding regression alone (unweighted, as the
            # reference's identity_train_step)
            loss = outputs.lexical_loss
        elif labels is None:
            raise ConfigError("the model's outputs hold no sampled-tokenization labels", component=COMPONENT,
                              hint="the 'zett' loss trains a hypernetwork: use it with "
                              "[recipe] type = 'zett'")
        else:
            logits = outputs.logits[:, :-1]
            target = labels[:, 1:]
            lm = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=IGNORE_INDEX)
            loss = lm + self.lexical_weight * outputs.lexical_loss
        if num_items is None:
            return loss
        # The runner counts num_items over the *original* labels of the whole accumulated batch
        # (and all ranks); weighting this micro-batch's mean by its share of them makes gradient
        # accumulation and DDP average over micro-batches as over one batch.
        local = (batch["labels"][:, 1:] != IGNORE_INDEX).sum()
        total = num_items.to(local.device) if isinstance(num_items, torch.Tensor) else torch.tensor(num_items)
        return loss * local / total.clamp(min=1)


@attrs.define
class ZeTTRecipe(Recipe):
    """Trains a ZeTT hypernetwork for the run's model (frozen) and tokenizer; rank 0 saves it
    as ``output_dir/hypernetwork.safetensors``."""

    name = "zett"

    layers: int = attrs.field(default=3, validator=positive_int, metadata={
        "doc": "encoder layers of the hypernetwork (the paper: hn_n_layers = 3)"})
    heads: int = attrs.field(default=4, validator=positive_int, metadata={
        "doc": "attention heads of the hypernetwork's encoder"})
    hidden: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                    metadata={
        "doc": "the hypernetwork's width (None: the model's hidden size, as the paper)"})
    surface_maxlen: int = attrs.field(default=7, validator=positive_int, metadata={
        "doc": "pieces of a token's decomposition by the original tokenizer kept (the paper: 7)"})
    residual_mean: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool), metadata={
        "doc": "a departure from the paper for short runs: predict the mean of the pieces' source rows "
               "(FVT) plus a learned correction that starts at zero, so training starts from FVT and "
               "single-piece tokens start exactly at their rows (False: the paper's hypernetwork)"})
    vocab_size: int = attrs.field(default=32768, validator=positive_int, metadata={
        "doc": "tokens of each sampled UnigramLM, the LM loss's softmax (the paper: 32768)"})
    identity_vocab_size: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(positive_int), metadata={
            "doc": "original tokens regressed per identity warm-up step (the reference's "
                   "identity_n_subsample; None: vocab_size)"})
    max_token_bytes: int = attrs.field(default=16, validator=positive_int, metadata={
        "doc": "longest candidate token of a sampled tokenizer, in bytes"})
    noise_mean: float = attrs.field(default=1e-5, validator=_finite, metadata={
        "doc": "mean of the log-scale noise on token scores (the paper: 1e-5)"})
    noise_std: float = attrs.field(default=4.0, validator=non_negative, metadata={
        "doc": "σ of the log-scale noise on token scores (the paper: 4)"})
    identity_steps: int = attrs.field(default=10000, validator=non_negative_int, metadata={
        "doc": "identity warm-up: optimizer steps regressing the original embeddings first (the paper: "
               "10k)"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "seeds the tokenizer sampling (per batch and rank)"})
    artifact: str = attrs.field(default=ARTIFACT_NAME, validator=attrs.validators.instance_of(str), metadata={
        "doc": "file name of the saved hypernetwork in the output directory"})
    save_every: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "also write the artifact every N optimizer steps (0: at the end only), so an interrupted "
               "run leaves its latest hypernetwork (a few MB; the runner's checkpoints hold the frozen LM "
               "too)"})
    model: ZeTTModel | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        if ctx.tokenizer is None:
            raise ConfigError("the zett recipe needs the model's tokenizer", component=COMPONENT)
        hn = hypernetwork_for(model, layers=self.layers, heads=self.heads, hidden=self.hidden,
                              surface_maxlen=self.surface_maxlen, residual_mean=self.residual_mean)
        self.model = ZeTTModel(model, ctx.tokenizer, hn, self)
        self.model.rank = ctx.rank
        return self.model

    def callbacks(self, ctx: TrainContext) -> list[Any]:
        # The runner's default cross-entropy would read the original labels against logits over
        # the sampled vocabulary: wrong, and silently so when the ids happen to be in range.
        objective = getattr(ctx.trainer, "objective", None)
        if not isinstance(getattr(objective, "loss", objective), ZeTTLoss) \
                or getattr(objective, "weights", ()) or getattr(objective, "masks", ()):
            name = getattr(objective, "name", objective)
            raise ConfigError(f"the zett recipe trains with the zett loss alone, not {name!r}",
                              component=COMPONENT,
                              hint='add [[objective]] type = "zett" (and no other objective)')
        recipe = self

        class Steps(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                recipe.model.step = state.global_step

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if recipe.save_every and state.global_step % recipe.save_every == 0 \
                        and state.global_step < state.max_steps:
                    self.save(state)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                self.save(state)

            def save(self, state: Any) -> None:
                if ctx.is_main_process and ctx.output_dir is not None:
                    save_hypernetwork(ctx.output_dir / recipe.artifact, recipe.model.hn, ctx.tokenizer,
                                      config={"steps": state.global_step,
                                              "recipe": attrs.asdict(recipe, filter=lambda a, _: a.init)})

        return [Steps()]
