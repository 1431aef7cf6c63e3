"""Hook implementations of tokensmith-transnormer (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

from .config import SRMSNormConfig, TransNormerConfig

_M = "tokensmith_transnormer"


@hookimpl
def tokensmith_register_normalizations():
    return [Component("srmsnorm", f"{_M}.srmsnorm:SRMSNormalization.from_config",
                      "replace RMSNorm/LayerNorm layers with SRMSNorm (no gain; TransNormerLLM)",
                      config_class=SRMSNormConfig)]


@hookimpl
def tokensmith_register_architectures():
    return [Component("transnormer-lm", f"{_M}.model:TransNormerArchitecture.from_config",
                      "TransNormer LM: gated linear attention with decay, Lightning Attention, "
                      "SRMSNorm, SGLU, constant-memory recurrent decoding",
                      config_class=TransNormerConfig)]


@hookimpl
def tokensmith_register_demos():
    return [Component("transnormer", f"{_M}.demo:TransNormerDemo",
                      "recurrent = blockwise linear attention, constant state size, time vs softmax")]


@hookimpl
def tokensmith_load_model(source, runtime):
    if source.source != "transnormer-lm":
        return None
    from .source import load

    return load(source.params, runtime)


@hookimpl
def tokensmith_wrap_language_model(model, tokenizer):
    if type(model).__name__ != "TransNormerLM":
        return None
    from .source import wrap

    return wrap(model, tokenizer)
