"""The core's own hook implementations: loading models from sources, wrapping causal LMs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokensmith.core.errors import ModelLoadError
from tokensmith.core.pipeline import ModelSource
from tokensmith.core.runtime import Runtime
from tokensmith.spec import hookimpl

from . import models

TINY = {"tiny-llama": models.tiny_llama, "tiny-gpt2": models.tiny_gpt2}
TINY_PARAMS = {"tokenizer", "vocab_size", "hidden_size", "layers", "heads", "context", "seed"}


@hookimpl(trylast=True)
def tokensmith_load_model(source: ModelSource, runtime: Runtime) -> Any:
    name, params = source.source, dict(source.params)
    if name == "smollm2":
        model, tok = models.load_smollm2(runtime, progress=params.get("progress", True))
        return model, tok
    if name == "minilm":
        return models.load_minilm(runtime)
    if name in TINY:
        unknown = set(params) - TINY_PARAMS
        if unknown:
            raise ModelLoadError(f"unknown parameters {sorted(unknown)} for {name}",
                                 component="model", hint="accepted: " + ", ".join(sorted(TINY_PARAMS)))
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
        if not path.exists():
            raise ModelLoadError(f"GGUF file {str(path)!r} does not exist", component="model")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from .hf_tokenizer import HFTokenizer

        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                     dtype=runtime.torch_dtype())
        return model.to(runtime.torch_device()).eval(), HFTokenizer.from_transformers(tok, name=path.stem)
    return None


@hookimpl(trylast=True)
def tokensmith_wrap_language_model(model: Any, tokenizer: Any, runtime: Runtime) -> Any:
    from .hf_lm import wrap_language_model

    return wrap_language_model(model, tokenizer, runtime)
