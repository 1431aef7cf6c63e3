"""Testing support for plugin authors: fixtures (see :mod:`tokensmith.testing.plugin`,
loaded automatically by pytest) and contract suites to subclass.

A plugin's tests reuse the contracts::

    from tokensmith.testing import DecoderContract

    class TestMyDecoder(DecoderContract):
        @pytest.fixture
        def decoder(self):
            return MyDecoder()

Each contract documents the fixtures it needs; the ``lm``/``tokenizer``
fixtures default to the tiny models of :mod:`tokensmith.testing.plugin`.
"""

from .contracts import (
    ConstraintContract,
    DecoderContract,
    EmbeddingContract,
    NormalizationContract,
    TokenizerContract,
    representable_text,
)

__all__ = ["ConstraintContract", "DecoderContract", "EmbeddingContract", "NormalizationContract",
           "TokenizerContract", "representable_text"]
