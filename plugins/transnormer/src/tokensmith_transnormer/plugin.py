"""Hook implementations of tokensmith-transnormer (records only; nothing heavy is imported)."""

from __future__ import annotations

import sys

from tokensmith import Component, hookimpl

_M = "tokensmith_transnormer"


@hookimpl
def tokensmith_register_normalizations():
    return [Component("srmsnorm", f"{_M}.srmsnorm:SRMSNormalization",
                      "replace RMSNorm/LayerNorm layers with SRMSNorm (no gain; TransNormerLLM)")]


@hookimpl
def tokensmith_register_architectures():
    return [Component("transnormer-lm", f"{_M}.model:TransNormerArchitecture",
                      "TransNormer LM: gated linear attention with decay, Lightning Attention, "
                      "SRMSNorm, SGLU, constant-memory recurrent decoding")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("transnormer", f"{_M}.benchmark:TransNormerBenchmark",
                      "Lightning Attention vs softmax (time, memory vs length), SRMSNorm speed, a tiny "
                      "TransNormer LM vs an equally sized Llama through the recipe runner")]


@hookimpl
def tokensmith_register_demos():
    return [Component("transnormer", f"{_M}.demo:TransNormerDemo",
                      "recurrent = blockwise linear attention, constant state size, time vs softmax")]


@hookimpl
def tokensmith_describe_model(source):
    if source.source != "transnormer-lm":
        return None
    from .source import describe

    return describe()


@hookimpl
def tokensmith_load_model(source, runtime):
    if source.source != "transnormer-lm":
        return None
    from .source import load

    return load(source.params, runtime)


@hookimpl
def tokensmith_wrap_language_model(model, tokenizer, runtime):
    # a TransNormerLM exists only once its module has been imported (torch stays unimported)
    module = sys.modules.get(f"{_M}.model")
    if module is None or not isinstance(model, module.TransNormerLM):
        return None
    from .source import wrap

    return wrap(model, tokenizer, runtime)
