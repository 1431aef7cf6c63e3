import pytest


@pytest.fixture
def plugin_registry(make_registry):
    import tokensmith_glyph_embeddings.plugin as plugin

    return make_registry(plugin)


@pytest.fixture(scope="session")
def registry():
    from tokensmith import Registry

    return Registry.from_environment()


@pytest.fixture(scope="session")
def bank(registry):
    """Unifont's glyphs, or a skip that says why (the dataset's DataUnavailableError: the package
    and its install command)."""
    from tokensmith_glyph_embeddings.glyphs import load_glyphs

    from tokensmith import DataUnavailableError

    try:
        return load_glyphs(registry)
    except DataUnavailableError as exc:
        pytest.skip(f"GNU Unifont is not installed: {exc}")


@pytest.fixture(scope="session")
def ngram_tokenizer():
    """A small unicode-ngrams vocabulary (ASCII, the corpus's characters, a few n-grams)."""
    from tokensmith_glyph_embeddings.tokenizer import UnicodeNgrams

    from tokensmith.testing import TINY_CORPUS

    corpus = [TINY_CORPUS, "Ωμέγα και άλφα. Привет, мир! 0O0O l1l1 Il1|", "漢字かな交じり文"] * 2
    return UnicodeNgrams(bigrams=40, trigrams=16).train(corpus, progress=False)
