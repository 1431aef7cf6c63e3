"""Testing support for plugin authors — the public surface for tests.

Fixtures come from :mod:`tokensmith.testing.plugin` (loaded by pytest through
the ``pytest11`` entry point; it needs only pytest). The contract suites need
``hypothesis`` (``pip install "tokensmith[test]"``) and are imported on first
use, so installing tokensmith never breaks a pytest run without hypothesis::

    from tokensmith.testing import DecoderContract

    class TestMyDecoder(DecoderContract):
        @pytest.fixture
        def decoder(self):
            return MyDecoder()

Each contract documents the fixtures it needs; ``lm``/``tokenizer`` fixtures
default to the tiny models below. The model builders are here so tests need no
internal module path.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConstraintContract": "tokensmith.testing.contracts",
    "DatasetContract": "tokensmith.testing.datasets",
    "no_network": "tokensmith.testing.datasets",
    "DecoderContract": "tokensmith.testing.contracts",
    "EmbeddingContract": "tokensmith.testing.contracts",
    "NormalizationContract": "tokensmith.testing.contracts",
    "TokenizerContract": "tokensmith.testing.contracts",
    "TokenizerStageContract": "tokensmith.testing.contracts",
    "TokenizerTrainerContract": "tokensmith.testing.contracts",
    "representable_text": "tokensmith.testing.contracts",
    "trainer_corpus": "tokensmith.testing.contracts",
    "LossContract": "tokensmith.testing.objectives",
    "TokenWeightsContract": "tokensmith.testing.objectives",
    "TokenMaskContract": "tokensmith.testing.objectives",
    "RewardContract": "tokensmith.testing.objectives",
    "AdvantageContract": "tokensmith.testing.objectives",
    "objective_batches": "tokensmith.testing.objectives",
    "TINY_CORPUS": "tokensmith.adapters.models",
    "tiny_tokenizer": "tokensmith.adapters.models",
    "tiny_llama": "tokensmith.adapters.models",
    "tiny_gpt2": "tokensmith.adapters.models",
    "load_smollm2": "tokensmith.adapters.models",
    "load_minilm": "tokensmith.adapters.models",
    "smollm2_cache_dir": "tokensmith.adapters.models",
    "OffsetRMSNorm": "tokensmith.testing.norms",
    "gemma_style_norms": "tokensmith.testing.norms",
    "TwoDimNormBlock": "tokensmith.testing.norms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as exc:
            if exc.name != "hypothesis":
                raise
            raise ImportError(f"tokensmith.testing.{name} needs hypothesis: pip install "
                              "'tokensmith[test]' (or hypothesis)") from exc
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tokensmith.testing' has no attribute {name!r}")


__all__ = sorted(_LAZY)
