"""Hook specifications of the ``tokensmith`` plugin contract.

Registration hooks return a list of :class:`~tokensmith.core.records.Component`
records; the registry stamps each with its kind, plugin and distribution
version. Every hook runs at registration or build time — none is called per
token or per batch. An implementation may accept a subset of a hook's
arguments (pluggy's opt-in arguments). Each hook is documented in
``docs/hooks.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from tokensmith.core.kinds import KIND_TABLE

if TYPE_CHECKING:
    from tokensmith.core.pipeline import ModelSource, Pipeline
    from tokensmith.core.records import Component, ModelInfo
    from tokensmith.core.runtime import Runtime

PROJECT = "tokensmith"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def tokensmith_register_tokenizers() -> list[Component]:
    """Tokenizers (text <-> ids with a byte view).

    Called once when a registry is built. Return records whose factory builds
    a :class:`~tokensmith.core.tokenizer.Tokenizer`.
    """


@hookspec
def tokensmith_register_tokenizer_stages() -> list[Component]:
    """Tokenizer stages: text normalizers run before tokenization
    (:class:`~tokensmith.core.kinds.TokenizerStage`)."""


@hookspec
def tokensmith_register_tokenizer_trainers() -> list[Component]:
    """Tokenizer trainers that learn a Tokenizer from texts
    (:class:`~tokensmith.core.kinds.TokenizerTrainer`)."""


@hookspec
def tokensmith_register_embeddings() -> list[Component]:
    """Embedding providers (:class:`~tokensmith.core.embedding.EmbeddingProvider`)."""


@hookspec
def tokensmith_register_normalizations() -> list[Component]:
    """Normalization providers: norm modules and norm surgery
    (:class:`~tokensmith.core.normalization.NormalizationProvider`)."""


@hookspec
def tokensmith_register_decoders() -> list[Component]:
    """Decoders (:class:`~tokensmith.core.decoding.Decoder`). A decoder
    that honours constraints sets the class attribute ``accepts_constraint = True``."""


@hookspec
def tokensmith_register_constraints() -> list[Component]:
    """Constraints: predicates on byte prefixes (:class:`~tokensmith.core.constraint.Constraint`)."""


@hookspec
def tokensmith_register_objectives() -> list[Component]:
    """Objectives: losses, token weights or masks, rewards and advantages
    (:mod:`tokensmith.core.objectives`: Loss, TokenWeights, TokenMask, Reward, Advantage)."""


@hookspec
def tokensmith_register_recipes() -> list[Component]:
    """Training recipes run by the core recipe runner (:class:`~tokensmith.core.recipe.Recipe`)."""


@hookspec
def tokensmith_register_datasets() -> list[Component]:
    """Datasets: offline corpora and task sets (:class:`~tokensmith.core.dataset.Dataset`)."""


@hookspec
def tokensmith_register_benchmarks() -> list[Component]:
    """Benchmarks run by ``tokensmith bench`` (:class:`~tokensmith.core.kinds.Benchmark`)."""


@hookspec
def tokensmith_register_evaluations() -> list[Component]:
    """Evaluations: task generators, scorers and reports (:class:`~tokensmith.core.kinds.Evaluation`)."""


@hookspec
def tokensmith_register_attributions() -> list[Component]:
    """Attribution methods (:class:`~tokensmith.core.kinds.Attribution`)."""


@hookspec
def tokensmith_register_architectures() -> list[Component]:
    """Model architectures a technique defines (:class:`~tokensmith.core.kinds.Architecture`)."""


@hookspec
def tokensmith_register_demos() -> list[Component]:
    """Sections of ``tokensmith demo`` (:class:`~tokensmith.core.kinds.Demo`): each
    shows what a plugin does against the baseline on the default model."""


@hookspec(firstresult=True)
def tokensmith_describe_model(source: ModelSource) -> ModelInfo | None:
    """Describe the model named by ``source`` before anything loads.

    Return a :class:`~tokensmith.core.records.ModelInfo` — the ``[model]``
    parameters the source accepts (typed; any other key is a validation error)
    and the capabilities it provides (``"causal_lm"``, ``"byte_view"``; ``None``
    if only loading can tell) — or ``None`` if this plugin does not know the
    source. Implement it next to :func:`tokensmith_load_model`. Called when a
    pipeline is validated.
    """


@hookspec(firstresult=True)
def tokensmith_load_model(source: ModelSource, runtime: Runtime) -> Any:
    """Load the model named by ``source`` (a :class:`~tokensmith.core.pipeline.ModelSource`).

    Return ``(model, tokenizer)`` — an ``nn.Module`` and a
    :class:`~tokensmith.core.tokenizer.Tokenizer` — or ``None`` if this plugin
    does not handle the source. The first non-``None`` result wins; the core's
    adapters handle ``smollm2``, ``minilm``, ``tiny-*``, transformers
    directories, ``.gguf`` and ``.safetensors`` files.
    """


@hookspec(firstresult=True)
def tokensmith_wrap_language_model(model: Any, tokenizer: Any, runtime: Runtime) -> Any:
    """Wrap a loaded model as a :class:`~tokensmith.core.language_model.LanguageModel`.

    Return the wrapper, or ``None`` if this plugin does not know the model. The
    first non-``None`` result wins; the core's adapter (tried last) wraps
    transformers causal LMs and returns ``None`` for encoders. Plugins whose
    architectures are not transformers models (e.g. a recurrent LM) implement
    this together with :func:`tokensmith_load_model`.
    """


@hookspec
def tokensmith_configure(runtime: Runtime) -> None:
    """Called with the :class:`~tokensmith.core.runtime.Runtime` whenever a pipeline is
    built, before the model loads. An implementation that raises is skipped with a
    warning naming its distribution (``TOKENSMITH_STRICT_PLUGINS=1``: an error)."""


@hookspec
def tokensmith_pipeline_built(pipeline: Pipeline) -> None:
    """Called once after a :class:`~tokensmith.core.pipeline.Pipeline` is built (e.g. to log
    it). An implementation that raises is skipped with a warning naming its distribution."""


#: registration hook name -> component kind (from the kind table, tokensmith.core.kinds)
REGISTRATION_HOOKS: dict[str, str] = {k.hook: k.name for k in KIND_TABLE}

HOOKS: tuple[str, ...] = (*REGISTRATION_HOOKS, "tokensmith_describe_model", "tokensmith_load_model",
                          "tokensmith_wrap_language_model", "tokensmith_configure",
                          "tokensmith_pipeline_built")
