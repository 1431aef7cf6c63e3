"""tokensmith — a plugin SDK for the token-level techniques of language models.

``import tokensmith`` is light: torch and transformers are imported only when a
component that needs them is built.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata

from tokensmith.core.constraint import AllOf, AnyOf, Constraint, FunctionConstraint
from tokensmith.core.decoding import Decoder
from tokensmith.core.embedding import EmbeddingProvider
from tokensmith.core.errors import (
    ArtifactError,
    ByteViewError,
    ComponentCollisionError,
    ConfigError,
    ContextLengthError,
    IncompatibleComponentsError,
    InputError,
    ModelLoadError,
    PluginLoadError,
    StaleStateError,
    SurgeryError,
    TokensmithError,
    UnknownComponentError,
    UnrepresentableTextError,
    UnsupportedRuntimeError,
    ValidationError,
)
from tokensmith.core.kinds import (
    Architecture,
    Attribution,
    Demo,
    Evaluation,
    EvaluationReport,
    Objective,
    TokenizerStage,
    TokenizerTrainer,
)
from tokensmith.core.language_model import BYTE_EOS, ByteLanguageModel, ByteState, LanguageModel, LMState
from tokensmith.core.normalization import NormalizationProvider, NormLayer, find_norm_layers
from tokensmith.core.pipeline import BuildContext, ModelSource, Pipeline, PipelineSpec
from tokensmith.core.records import (
    Change,
    Component,
    ComponentRef,
    Encoding,
    Generation,
    ModelReport,
    PreToken,
)
from tokensmith.core.runtime import Runtime
from tokensmith.core.tokenizer import Tokenizer, check_byte_view
from tokensmith.registry import Registry
from tokensmith.spec import hookimpl

try:
    __version__ = metadata.version("tokensmith")
except metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"


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
    "BYTE_EOS", "ByteLanguageModel", "ByteState", "AllOf", "AnyOf", "Architecture", "ArtifactError",
    "Attribution", "BuildContext",
    "ByteViewError", "Change", "Component", "ComponentCollisionError", "ComponentRef",
    "ConfigError", "Constraint", "ContextLengthError", "Decoder", "Demo", "EmbeddingProvider",
    "Encoding", "Evaluation", "EvaluationReport", "FunctionConstraint", "Generation",
    "IncompatibleComponentsError", "InputError", "LMState", "LanguageModel", "ModelLoadError",
    "ModelReport", "ModelSource", "NormLayer", "NormalizationProvider", "Objective", "Pipeline",
    "PipelineSpec", "PluginLoadError", "PreToken", "Registry", "Runtime", "StaleStateError",
    "SurgeryError", "Tokenizer", "TokenizerStage", "TokenizerTrainer", "TokensmithError",
    "UnknownComponentError", "UnrepresentableTextError", "UnsupportedRuntimeError",
    "ValidationError", "check_byte_view", "default_registry", "find_norm_layers", "hookimpl",
    "load_pipeline",
]
