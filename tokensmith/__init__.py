"""tokensmith — a plugin SDK for the token-level techniques of language models.

``import tokensmith`` is light: torch and transformers are imported only when a
component that needs them is built. ``__all__`` is the public API plugins use;
every other module path is internal (tests/test_meta.py checks that no
first-party plugin imports one). Tests have their own surface,
:mod:`tokensmith.testing`.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib import metadata
from typing import Any

from tokensmith.core.bench import (
    Comparison,
    PeakRSS,
    TextScore,
    Timing,
    average_ranks,
    best_of,
    bits_per_byte,
    compare,
    peak_rss,
    peak_rss_bytes,
    pearson,
    perplexity,
    ratio,
    rss_bytes,
    score_texts,
    spearman,
    text_pieces,
)
from tokensmith.core.chat import CHATML_MARKERS, chatml_prompt, has_chatml
from tokensmith.core.constraint import AllOf, AnyOf, Constraint, FunctionConstraint
from tokensmith.core.dataset import Dataset, DatasetInfo, SplitDataset, seeded_sample, seeded_split, split_of
from tokensmith.core.decoding import Decoder, DecodeRequest
from tokensmith.core.embedding import EmbeddingProvider
from tokensmith.core.embedding import describe as describe_module
from tokensmith.core.errors import (
    ArtifactDeviceError,
    ArtifactError,
    ArtifactVersionError,
    ByteViewError,
    ComponentCollisionError,
    ComponentError,
    ConfigError,
    ContextLengthError,
    CorruptArtifactError,
    DataUnavailableError,
    IncompatibleComponentsError,
    InputError,
    ModelLoadError,
    ParameterTypeError,
    PluginLoadError,
    ResourceLimitError,
    StaleStateError,
    SurgeryError,
    TokensmithError,
    UnknownComponentError,
    UnrepresentableTextError,
    UnsupportedRuntimeError,
    UntrustedModelError,
    ValidationError,
)
from tokensmith.core.kinds import (
    KIND_TABLE,
    KINDS,
    REQUIREMENTS,
    Architecture,
    Attribution,
    Benchmark,
    Demo,
    Evaluation,
    Kind,
    TokenizerStage,
    TokenizerTrainer,
)
from tokensmith.core.language_model import BYTE_EOS, ByteLanguageModel, ByteState, LanguageModel, LMState
from tokensmith.core.normalization import NormalizationProvider, NormLayer, find_norm_layers, replace_module
from tokensmith.core.objectives import (
    IGNORE_INDEX,
    RESPONSE_MASK_KEY,
    ROLES,
    TOKEN_WEIGHTS_KEY,
    Advantage,
    ComposedLoss,
    Loss,
    Objective,
    Reward,
    TokenCrossEntropy,
    TokenMask,
    TokenWeights,
    compose,
    response_tokens,
    role_of,
    token_cross_entropy,
)
from tokensmith.core.params import Parameter, parameters_of
from tokensmith.core.pipeline import BuildContext, ModelSource, Pipeline, PipelineSpec, parse_toml, read_toml
from tokensmith.core.recipe import EvalPoint, Recipe, TrainContext, TrainResult
from tokensmith.core.recipe_spec import DatasetSpec, DataSettings, RecipeSpec, TrainSettings
from tokensmith.core.records import (
    Change,
    Component,
    ComponentRef,
    ConstraintSet,
    Encoding,
    Generation,
    ModelInfo,
    ModelReport,
    PreToken,
)
from tokensmith.core.report import REPORT_FORMAT, Provenance, Report, Series, Table
from tokensmith.core.runtime import Runtime
from tokensmith.core.sampling import filtered_probs
from tokensmith.core.text import bold
from tokensmith.core.tokenizer import (
    Tokenizer,
    TrustedText,
    check_byte_view,
    encode_prompt,
    require_ids,
    require_text,
    require_texts,
)
from tokensmith.core.validators import (
    non_negative,
    non_negative_int,
    positive,
    positive_int,
    probability,
    unit_interval,
)
from tokensmith.registry import Registry
from tokensmith.spec import hookimpl

try:
    __version__ = metadata.version("tokensmith")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

#: public names whose modules import tokenizers/torch/transformers: imported on first use
_LAZY = {
    "HFTokenizer": "tokensmith.adapters.hf_tokenizer",
    "byte_level_decoder": "tokensmith.adapters.hf_tokenizer",
    "HFCausalLM": "tokensmith.adapters.hf_lm",
    "tiny_tokenizer": "tokensmith.adapters.models",
    "atomic_write_bytes": "tokensmith.adapters.artifacts",
    "atomic_write_text": "tokensmith.adapters.artifacts",
    "save_artifact": "tokensmith.adapters.artifacts",
    "load_artifact": "tokensmith.adapters.artifacts",
    "install_embeddings": "tokensmith.adapters.embeddings",
    "map_shared_tokens": "tokensmith.adapters.embeddings",
    "check_vocabulary": "tokensmith.adapters.embeddings",
    "mask_padding_rows": "tokensmith.adapters.embeddings",
    "subtoken_mean": "tokensmith.adapters.embeddings",
    "train": "tokensmith.adapters.training",
    "run_recipe": "tokensmith.adapters.training",
    "build_sequences": "tokensmith.adapters.training",
    "PadCollator": "tokensmith.adapters.training",
    "load_checkpoint": "tokensmith.adapters.checkpoints",
    "train_tokenizer": "tokensmith.adapters.tokenizer_training",
    "to_markdown": "tokensmith.adapters.report",
    "to_terminal": "tokensmith.adapters.report",
    "write_json": "tokensmith.adapters.report",
    "write_png": "tokensmith.adapters.report",
    "write_all": "tokensmith.adapters.report",
    "compute_loss_func": "tokensmith.adapters.trainer_bridge",
    "ObjectiveTrainer": "tokensmith.adapters.trainer_bridge",
    "ObjectiveSFTTrainer": "tokensmith.adapters.trl",
    "reward_funcs": "tokensmith.adapters.trl",
    "sft_config": "tokensmith.adapters.trl",
    "grpo_config": "tokensmith.adapters.trl",
    "tensor_bytes": "tokensmith.adapters.bench",
    "live_tensor_bytes": "tokensmith.adapters.bench",
    "tensor_peak": "tokensmith.adapters.bench",
    "progress": "tokensmith.adapters.progress",
    "progress_enabled": "tokensmith.adapters.progress",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokensmith' has no attribute {name!r}")


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The registry of installed plugins, built once per process (CLI/convenience use)."""
    return Registry.from_environment()


def load_pipeline(spec: PipelineSpec | dict | str) -> Pipeline:
    """Build a pipeline from a spec, a config dict, or a TOML file path."""
    if isinstance(spec, str):
        spec = PipelineSpec.from_toml(spec)
    return default_registry().build_pipeline(spec)


__all__ = [
    "describe_module", "parse_toml", "read_toml",
    "IGNORE_INDEX", "ROLES", "TOKEN_WEIGHTS_KEY", "ComposedLoss", "TokenCrossEntropy", "compose",
    "token_cross_entropy", "Advantage", "Benchmark", "Dataset", "DataUnavailableError", "DatasetInfo",
    "SplitDataset", "seeded_sample", "seeded_split", "split_of", "Loss", "Recipe", "Reward", "TokenMask",
    "TokenWeights", "role_of",
    "DataSettings", "DatasetSpec", "EvalPoint", "RecipeSpec", "TrainContext", "TrainResult", "TrainSettings",
    "load_checkpoint", "run_recipe", "train", "build_sequences", "PadCollator",
    "RESPONSE_MASK_KEY", "response_tokens", "compute_loss_func", "ObjectiveTrainer", "ObjectiveSFTTrainer",
    "reward_funcs", "sft_config", "grpo_config", "progress", "progress_enabled",
    "BYTE_EOS", "KINDS", "KIND_TABLE", "REPORT_FORMAT", "REQUIREMENTS", "AllOf", "AnyOf", "Architecture",
    "ArtifactDeviceError", "ArtifactError", "ArtifactVersionError", "Attribution", "BuildContext",
    "ByteLanguageModel", "ByteState", "ByteViewError", "Change", "Component", "ComponentCollisionError",
    "ComponentError", "ComponentRef", "ConfigError", "Constraint", "ConstraintSet", "ContextLengthError",
    "CorruptArtifactError", "DecodeRequest", "Decoder", "Demo", "EmbeddingProvider", "Encoding",
    "Evaluation", "FunctionConstraint", "Generation", "HFCausalLM", "HFTokenizer",
    "IncompatibleComponentsError", "InputError", "Kind", "LMState", "LanguageModel", "ModelInfo",
    "ModelLoadError", "ModelReport", "ModelSource", "NormLayer", "NormalizationProvider", "Objective",
    "Parameter", "ParameterTypeError", "Pipeline", "PipelineSpec", "PluginLoadError", "PreToken",
    "Provenance", "Registry", "Report", "ResourceLimitError", "Runtime", "Series", "StaleStateError",
    "SurgeryError", "Table", "Tokenizer", "TokenizerStage", "TokenizerTrainer", "TokensmithError",
    "TrustedText", "UnknownComponentError", "UnrepresentableTextError", "UnsupportedRuntimeError",
    "UntrustedModelError", "ValidationError", "atomic_write_bytes", "atomic_write_text", "bold",
    "byte_level_decoder", "check_byte_view", "check_vocabulary", "default_registry", "encode_prompt",
    "filtered_probs", "find_norm_layers", "hookimpl", "install_embeddings", "load_artifact",
    "load_pipeline", "map_shared_tokens", "mask_padding_rows", "non_negative", "non_negative_int",
    "parameters_of", "positive", "positive_int", "probability", "replace_module", "require_ids",
    "require_text", "require_texts", "save_artifact", "tiny_tokenizer", "to_markdown", "to_terminal",
    "train_tokenizer", "subtoken_mean",
    "unit_interval", "write_all", "write_json", "write_png",
    "Comparison", "PeakRSS", "TextScore", "Timing", "best_of", "bits_per_byte", "compare", "text_pieces",
    "average_ranks", "pearson", "spearman",
    "live_tensor_bytes", "peak_rss", "peak_rss_bytes", "perplexity", "ratio", "rss_bytes", "score_texts",
    "tensor_bytes", "tensor_peak",
    "CHATML_MARKERS", "chatml_prompt", "has_chatml",
]
