"""The core's own hook implementations: describing and loading models from sources,
wrapping causal LMs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from tokensmith.core.params import Parameter
from tokensmith.core.pipeline import ModelSource
from tokensmith.core.records import ModelInfo
from tokensmith.core.runtime import Runtime
from tokensmith.core.validators import non_negative_int, positive_int
from tokensmith.spec import hookimpl

from . import models

TINY = {"tiny-llama": models.tiny_llama, "tiny-gpt2": models.tiny_gpt2}
_CAUSAL_TOKENS = frozenset({"causal_lm", "byte_view"})
TINY_PARAMETERS = (
    Parameter("tokenizer", Literal["byte_level", "byte_fallback"], "byte_level",
              doc="the tiny tokenizer's model: byte-level BPE or SentencePiece-style byte fallback"),
    Parameter("vocab_size", int, 320, (positive_int,)),
    Parameter("hidden_size", int, 32, (positive_int,)),
    Parameter("layers", int, 2, (positive_int,)),
    Parameter("heads", int, 4, (positive_int,)),
    Parameter("context", int, 256, (positive_int,)),
    Parameter("seed", int, 0, (non_negative_int,)),
)
PROGRESS = Parameter("progress", bool, True, doc="show a progress bar while converting the GGUF file")
CAUSAL = Parameter("causal", bool, True, doc="load with AutoModelForCausalLM (False: AutoModel)")


@hookimpl(trylast=True)
def tokensmith_describe_model(source: ModelSource) -> ModelInfo | None:
    name = source.source
    if name == "smollm2":
        return ModelInfo(name, (PROGRESS,), _CAUSAL_TOKENS)
    if name == "minilm":
        return ModelInfo(name, (), frozenset())
    if name in TINY:
        return ModelInfo(name, TINY_PARAMETERS, _CAUSAL_TOKENS)
    path = Path(name).expanduser()
    if path.is_dir() or (path.suffix == ".safetensors" and path.exists()):
        return ModelInfo(name, (CAUSAL,), None)
    if path.suffix == ".gguf":
        return ModelInfo(name, (), None)
    return None


@hookimpl(trylast=True)
def tokensmith_load_model(source: ModelSource, runtime: Runtime) -> Any:
    name, params = source.source, dict(source.params)
    if name == "smollm2":
        model, tok = models.load_smollm2(runtime, progress=params.get("progress", True))
        return model, tok
    if name == "minilm":
        return models.load_minilm(runtime)
    if name in TINY:
        tok = models.tiny_tokenizer(params.pop("tokenizer", "byte_level"),
                                    vocab_size=params.pop("vocab_size", 320))
        model, tok = TINY[name](tok, dtype=runtime.dtype, **params)
        return model.to(runtime.torch_device()), tok
    path = Path(name).expanduser()
    if path.is_dir():
        return models.load_transformers_dir(path, runtime, causal=params.get("causal", True))
    if path.suffix == ".safetensors" and path.exists():
        return models.load_transformers_dir(path.parent, runtime, causal=params.get("causal", True))
    if path.suffix == ".gguf":
        return models.load_gguf(path, runtime)
    return None


@hookimpl(trylast=True)
def tokensmith_wrap_language_model(model: Any, tokenizer: Any, runtime: Runtime) -> Any:
    from .hf_lm import wrap_language_model

    return wrap_language_model(model, tokenizer, runtime)
