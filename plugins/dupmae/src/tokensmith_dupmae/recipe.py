"""The ``dupmae`` recipe (Xiao & Liu, 2022, arXiv 2211.08769): before training, the loaded BERT
encoder (e.g. ``[model] source = "minilm"``) becomes a :class:`~tokensmith_dupmae.model.DupMAEModel`
— the encoder with its MLM head, plus the one-layer [CLS] decoder — whose forward draws the
encoder's whole-word mask and the decoder's per-row masks at the recipe's ratios. Train it with
the ``dupmae`` loss; the core runner does everything else (the loop is transformers' Trainer).
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import ConfigError, IncompatibleComponentsError, Recipe, non_negative_int, probability

COMPONENT = "recipe 'dupmae'"


@attrs.define
class DupMAERecipe(Recipe):
    """Wraps the run's BERT encoder in the DupMAE pre-training model."""

    name = "dupmae"
    encoder_mask_ratio: float = attrs.field(
        default=0.3,
        validator=probability,
        metadata={
            "doc": "share of the ordinary tokens the encoder's whole-word masking hides, in (0, 1] "
            "(paper: 0.3)"
        },
    )
    decoder_mask_ratio: float = attrs.field(
        default=0.5,
        validator=probability,
        metadata={"doc": "share of its context each decoder row does not see, in (0, 1] (paper: 0.5)"},
    )
    head_seed: int = attrs.field(
        default=0,
        validator=non_negative_int,
        metadata={
            "doc": "seed of the MLM head's transform when the checkpoint has none (MiniLM) and of the decoder"
        },
    )

    def prepare(self, model: Any, ctx: Any) -> Any:
        import torch

        from .model import DupMAEModel, dupmae_model

        settings = getattr(ctx, "settings", None)
        if settings is not None and getattr(settings, "grad_accumulation", 1) != 1:
            raise ConfigError(
                "[train] grad_accumulation must be 1 with the dupmae recipe: its loss is a mean "
                "per micro-batch of three terms, which the Trainer's token count cannot rescale",
                component=COMPONENT,
                hint="raise batch_size instead",
            )
        if isinstance(model, DupMAEModel):
            return model
        if ctx.tokenizer is None:
            raise IncompatibleComponentsError(
                "the run has no tokenizer: DupMAE needs the encoder's WordPiece "
                "tokenizer (words, [CLS]/[SEP]/[MASK])",
                component=COMPONENT,
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.head_seed)
            return dupmae_model(
                model,
                ctx.tokenizer,
                encoder_mask_ratio=self.encoder_mask_ratio,
                decoder_mask_ratio=self.decoder_mask_ratio,
                seed=self.head_seed,
            )
