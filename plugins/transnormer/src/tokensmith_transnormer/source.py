"""``[model] source = "transnormer-lm"``: a pipeline over a TransNormer LM.

A randomly initialised (``runtime.seed``) TransNormer LM over a tiny trained
tokenizer, wrapped as a :class:`~.language_model.TransNormerLanguageModel`, so
every decoder (``greedy``, ``sample``, constrained ones) runs on the recurrent,
constant-memory form.
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import ModelLoadError

from .config import TransNormerConfig

SOURCE = "transnormer-lm"


def load(params: dict[str, Any], runtime: Any) -> tuple[Any, Any]:
    from tokensmith.adapters.models import tiny_tokenizer

    from .model import TransNormerArchitecture

    params = dict(params)
    tokenizer = tiny_tokenizer(params.pop("tokenizer", "byte_level"),
                               vocab_size=params.pop("tokenizer_size", 320))
    try:
        config = TransNormerConfig(**params)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(f"bad parameters for {SOURCE}: {exc}", component=f"model '{SOURCE}'",
                             plugin="tokensmith-transnormer",
                             hint="accepted: tokenizer, tokenizer_size and the fields of "
                                  "TransNormerConfig") from None
    config = attrs.evolve(config, vocab_size=config.vocab_size or tokenizer.vocab_size)
    return TransNormerArchitecture(config).build(runtime), tokenizer


def wrap(model: Any, tokenizer: Any) -> Any:
    from .language_model import TransNormerLanguageModel

    return TransNormerLanguageModel(model, tokenizer)
