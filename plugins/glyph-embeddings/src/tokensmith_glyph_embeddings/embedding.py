"""The frozen glyph embedding provider and recipe of Bochkov (TMLR 2025, arXiv 2507.04886),
step 4: the glyph table (:mod:`.table`) becomes the model's input embedding with
``requires_grad = False``; the output head stays trainable.

The table goes in through ``tokensmith.install_embeddings`` (``table=``), so the resize, the
config and the report are the core's. A head tied to the input embeddings would be frozen with
them (or, trained, would move the "frozen" table), so a tied head is first given its own copy
of its weights and the model marked untied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    BuildContext,
    Change,
    EmbeddingProvider,
    IncompatibleComponentsError,
    ModelReport,
    Recipe,
    Tokenizer,
    TrainContext,
    install_embeddings,
    non_negative,
    non_negative_int,
)

from .table import GlyphTable, build_table, load_table

_OPTIONAL_PATH = attrs.validators.optional(attrs.validators.instance_of(Path))
_SEED = attrs.validators.and_(non_negative_int, attrs.validators.lt(2**63))  # a blake2b key of 8 bytes


def _optional_path(value: Any) -> Any:
    return None if value is None else Path(value)


def _untie(model: Any, changes: list[Change]) -> None:
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    embed = model.get_input_embeddings()
    if head is not None and head.weight is embed.weight:
        head.weight = torch.nn.Parameter(embed.weight.detach().clone())
        changes.append(Change("output_embeddings", "tied to input embeddings", "own trainable copy"))
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False
        changes.append(Change("config.tie_word_embeddings", "True", "False"))


@attrs.define
class GlyphEmbeddings(EmbeddingProvider):
    """Frozen visual Unicode embeddings: every token's Unifont rendering, PCA to the model
    width, unit rows; installed with ``requires_grad = False``."""

    name = "glyph-embeddings"

    path: Path | None = attrs.field(default=None, converter=_optional_path, validator=_OPTIONAL_PATH,
                                    metadata={
        "doc": "a saved glyph table (safetensors, see save_table) to install instead of rendering one; "
               "it must belong to the tokenizer (fingerprint) and the model width"})
    glyph_file: Path | None = attrs.field(default=None, converter=_optional_path, validator=_OPTIONAL_PATH,
                                          metadata={"doc": "a Unifont .hex file (default: Debian unifont's)"})
    augment: bool = attrs.field(default=True, metadata={
        "doc": "the paper's deterministic augmentation (rotation, shift, noise, blur; never for complex "
               "scripts)"})
    rotation: float = attrs.field(default=4.0, validator=non_negative, metadata={
        "doc": "largest rotation, degrees (paper: 4)"})
    shift: int = attrs.field(default=0, validator=non_negative_int, metadata={
        "doc": "largest shift in whole pixels (paper: 2; default 0: a 2-px shift of 2-px strokes "
               "decorrelates O/0 and l/1, measured in the README)"})
    noise: float = attrs.field(default=0.1, validator=non_negative, metadata={
        "doc": "standard deviation of the pixel noise before binarisation"})
    blur: float = attrs.field(default=0.5, validator=non_negative, metadata={
        "doc": "standard deviation (pixels) of the 3x3 Gaussian blur; 0 for none"})
    seed: int = attrs.field(default=0, validator=_SEED, metadata={
        "doc": "seed of the augmentation, below 2**63 (each token's draw comes from this seed and its text)"})
    frozen: bool = attrs.field(default=True, metadata={
        "doc": "install with requires_grad = False (the paper); false: the glyph table as a trainable init"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def render_settings(self) -> dict[str, Any]:
        """The rendering parameters, as :func:`~tokensmith_glyph_embeddings.glyphs.render` takes them."""
        return {"augment": self.augment, "rotation": self.rotation, "shift": self.shift, "noise": self.noise,
                "blur": self.blur, "seed": self.seed}

    def table_for(self, tokenizer: Tokenizer, width: int, registry: Any = None) -> GlyphTable:
        """The glyph table of ``tokenizer`` at ``width``: loaded from ``path`` (checked) or rendered."""
        component = f"embedding '{self.name}'"
        if self.path is not None:
            return load_table(self.path, tokenizer, width=width, component=component)
        if registry is None:
            registry = self.ctx.registry if self.ctx is not None and self.ctx.registry is not None else None
        if registry is None:
            from tokensmith import default_registry

            registry = default_registry()
        return build_table(tokenizer, width, registry=registry, glyph_file=self.glyph_file,
                           component=component, **self.render_settings())

    def build(self, model: Any, tokenizer: Tokenizer) -> Any:
        """A (frozen) ``nn.Embedding`` holding the glyph table, in the model's dtype and device."""
        import torch

        weight = _input_weight(model, self.name)
        glyphs = self.table_for(tokenizer, int(weight.shape[1]))
        module = torch.nn.Embedding.from_pretrained(glyphs.table.to(weight.device, weight.dtype),
                                                    freeze=self.frozen)
        return module

    def apply(self, model: Any, tokenizer: Tokenizer, *, old_tokenizer: Tokenizer | None = None,
              registry: Any = None) -> ModelReport:
        """Untie a tied head, install the glyph table through ``install_embeddings`` (rows for
        ``tokenizer``; the head's rows follow their tokens from ``old_tokenizer``, by default the
        pipeline's model tokenizer, else ``tokenizer``) and freeze it."""
        weight = _input_weight(model, self.name)
        old = old_tokenizer or (self.ctx.model_tokenizer if self.ctx is not None else None) or tokenizer
        glyphs = self.table_for(tokenizer, int(weight.shape[1]), registry)
        changes: list[Change] = []
        _untie(model, changes)
        report = install_embeddings(model, tokenizer, old_tokenizer=old, table=glyphs.table.to(weight.dtype))
        embedding = model.get_input_embeddings()
        embedding.weight.requires_grad_(not self.frozen)
        frozen = Change("input_embeddings.weight.requires_grad", "True", str(not self.frozen))
        notes = (*report.notes,
                 f"glyph table: {glyphs.table.shape[0]} rows x {glyphs.table.shape[1]}, PCA keeps "
                 f"{sum(glyphs.explained):.1%} of the bit variance",
                 *((f"{len(glyphs.missing)} characters have no Unifont glyph (drawn as one box): "
                    f"{''.join(glyphs.missing[:20])!r}",) if glyphs.missing else ()))
        return ModelReport(f"embedding '{self.name}'", (*changes, *report.changes, frozen), notes)


def _input_weight(model: Any, name: str) -> Any:
    get = getattr(model, "get_input_embeddings", None)
    embed = get() if callable(get) else None
    weight = getattr(embed, "weight", None)
    if weight is None or weight.dim() != 2:
        raise IncompatibleComponentsError(f"embedding '{name}': the model has no (vocab, width) input "
                                          "embedding table", component=f"embedding '{name}'",
                                          hint="use a transformers model (get_input_embeddings)")
    return weight


@attrs.define
class GlyphEmbeddingsRecipe(GlyphEmbeddings, Recipe):
    """Train with frozen glyph embeddings: ``prepare`` installs them (the provider's parameters)
    for the run's tokenizer; the rest of the model, output head included, trains."""

    name = "glyph-embeddings"

    def prepare(self, model: Any, ctx: TrainContext) -> Any:
        if ctx.tokenizer is None:
            raise IncompatibleComponentsError("recipe 'glyph-embeddings' needs the run's tokenizer to "
                                              "render its tokens", component="recipe 'glyph-embeddings'",
                                              hint="give run_recipe a tokenizer (or a [tokenizer] table)")
        self.apply(model, ctx.tokenizer, old_tokenizer=ctx.tokenizer, registry=ctx.registry)
        return model
