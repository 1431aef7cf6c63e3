"""Hook implementations of tokensmith-glyph-embeddings (records only; nothing heavy is imported)."""

from __future__ import annotations

from tokensmith import Component, hookimpl

_M = "tokensmith_glyph_embeddings"


@hookimpl
def tokensmith_register_embeddings():
    return [Component("glyph-embeddings", f"{_M}.embedding:GlyphEmbeddings",
                      "frozen visual Unicode embeddings (Bochkov 2025): each token rendered from GNU Unifont "
                      "glyphs, PCA to the model width, unit rows, requires_grad = False")]


@hookimpl
def tokensmith_register_recipes():
    return [Component("glyph-embeddings", f"{_M}.embedding:GlyphEmbeddingsRecipe",
                      "train with the frozen glyph embeddings installed (the output head and every other "
                      "layer train)")]


@hookimpl
def tokensmith_register_tokenizer_trainers():
    return [Component("unicode-ngrams", f"{_M}.tokenizer:UnicodeNgrams",
                      "Unicode-centric vocabulary (Bochkov 2025): code-point monograms, the corpus's "
                      "frequent bigrams/trigrams in Private Use Area slots, UTF-8 byte fallback")]


@hookimpl
def tokensmith_register_benchmarks():
    return [Component("glyph-embeddings", f"{_M}.benchmark:GlyphBenchmark",
                      "two tiny Unicode-n-gram Llamas on Lee news text through the recipe runner, frozen "
                      "glyph vs trainable embeddings: loss curves, held-out bits/byte, glyph nearest "
                      "neighbours")]
