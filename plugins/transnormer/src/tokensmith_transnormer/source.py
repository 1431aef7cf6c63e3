"""``[model] source = "transnormer-lm"``: a pipeline over a TransNormer LM.

A randomly initialised (``runtime.seed``) TransNormer LM over a tiny trained
tokenizer, wrapped as a :class:`~.language_model.TransNormerLanguageModel`, so
every decoder (``greedy``, ``sample``, constrained ones) runs on the recurrent,
constant-memory form.

The ``[model]`` parameters are described before anything loads
(:func:`describe`): the registry rejects unknown or ill-typed ones at validation,
so :func:`load` only checks what spans several fields (``width`` / ``heads``).
"""

from __future__ import annotations

from typing import Any, Literal

from tokensmith import ConfigError, ModelInfo, Parameter, positive_int

from .config import config_parameters

SOURCE = "transnormer-lm"

TOKENIZER_PARAMETERS = (
    Parameter("tokenizer", Literal["byte_level", "byte_fallback"], "byte_level",
              doc="the tiny tokenizer's model: byte-level BPE or SentencePiece-style byte fallback"),
    Parameter("tokenizer_size", int, 320, (positive_int,), doc="the tiny tokenizer's vocabulary size"),
)


def describe() -> ModelInfo:
    return ModelInfo(SOURCE, parameters=TOKENIZER_PARAMETERS + config_parameters(),
                     provides=frozenset({"causal_lm", "byte_view"}))


def load(params: dict[str, Any], runtime: Any) -> tuple[Any, Any]:
    from tokensmith import tiny_tokenizer

    from .model import TransNormerArchitecture

    params = {p.name: p.default for p in TOKENIZER_PARAMETERS} | dict(params)
    tokenizer = tiny_tokenizer(params.pop("tokenizer"), vocab_size=params.pop("tokenizer_size"))
    params.setdefault("vocab_size", tokenizer.vocab_size)
    try:
        architecture = TransNormerArchitecture(**params)
    except ConfigError as exc:
        # the registry names the component of what it builds; a model source it does not
        exc.component = exc.component or f"model '{SOURCE}'"
        raise
    return architecture.build(runtime), tokenizer


def wrap(model: Any, tokenizer: Any, runtime: Any) -> Any:
    from .language_model import TransNormerLanguageModel

    return TransNormerLanguageModel(model, tokenizer, runtime)
