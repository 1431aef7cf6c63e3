"""The glyph table: PCA against a brute-force SVD, unit rows, visually similar glyphs nearer
than random pairs, and the safetensors artifact bound to its tokenizer."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_glyph_embeddings.embedding import GlyphEmbeddings
from tokensmith_glyph_embeddings.table import l2_rows, load_table, pca_scores, save_table

from tokensmith import CorruptArtifactError, IncompatibleComponentsError, InputError


@settings(max_examples=25, deadline=None)
@given(n=st.integers(6, 24), features=st.integers(4, 30), seed=st.integers(0, 2**16), data=st.data())
def test_pca_agrees_with_a_brute_force_svd(n, features, seed, data):
    d = data.draw(st.integers(1, min(n - 1, features)))
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, features, generator=g) > 0.5).double()
    scores, explained = pca_scores(x, d)
    centred = x - x.mean(0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    brute = u[:, :d] * s[:d]
    variance = s ** 2
    total = float(variance.sum())
    expected = (variance[:d] / total).tolist() if total else [0.0] * d
    assert explained.tolist() == pytest.approx(expected, abs=1e-9)
    for k in range(d):
        if k + 1 < len(s) and abs(float(s[k] - s[k + 1])) < 1e-6 or float(s[k]) < 1e-9:
            continue  # a repeated or zero singular value has no unique direction
        column, reference = scores[:, k], brute[:, k]
        sign = 1.0 if float(column @ reference) >= 0 else -1.0
        assert torch.allclose(column, sign * reference, atol=1e-8)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_pca_scores_do_not_depend_on_the_order_of_the_bits(seed):
    """A fixed flatten order (raster or polar snake) permutes the features: the components'
    loadings permute with them and the scores, signs fixed by the largest loading, stay the same."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(40, 16, generator=g).double()
    perm = torch.randperm(16, generator=g)
    assert torch.allclose(pca_scores(x, 5)[0], pca_scores(x[:, perm], 5)[0], atol=1e-9)


def test_pca_needs_more_tokens_than_dimensions():
    with pytest.raises(IncompatibleComponentsError, match="d = 8"):
        pca_scores(torch.rand(8, 1024), 8)


def test_a_token_at_the_mean_image_is_an_error_not_a_zero_row():
    with pytest.raises(InputError, match="'mid'"):
        l2_rows(torch.tensor([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]]), ["a", "mid", "b"])


@pytest.fixture(scope="module")
def glyphs(bank, registry, ngram_tokenizer):
    return GlyphEmbeddings().table_for(ngram_tokenizer, 32, registry)


def test_rows_have_unit_norm_and_one_row_per_id(glyphs, ngram_tokenizer):
    assert glyphs.table.shape == (ngram_tokenizer.vocab_size, 32) and glyphs.table.dtype == torch.float32
    assert torch.allclose(glyphs.table.norm(dim=1), torch.ones(ngram_tokenizer.vocab_size), atol=1e-6)
    assert 0 < sum(glyphs.explained) <= 1


def test_the_table_is_deterministic(glyphs, registry, ngram_tokenizer):
    assert torch.equal(GlyphEmbeddings().table_for(ngram_tokenizer, 32, registry).table, glyphs.table)


def test_similar_glyphs_are_nearer_than_random_pairs(glyphs):
    g = torch.Generator().manual_seed(0)
    n = len(glyphs.texts)
    i, j = torch.randint(0, n, (5000,), generator=g), torch.randint(0, n, (5000,), generator=g)
    keep = torch.tensor([glyphs.texts[a] != glyphs.texts[b] for a, b in zip(i.tolist(), j.tolist())])
    random_mean = float((glyphs.table[i[keep]] * glyphs.table[j[keep]]).sum(1).mean())
    for a, b in (("O", "0"), ("l", "1"), ("I", "l")):
        assert glyphs.cosine(a, b) > random_mean + 0.3, (a, b)
    assert "1" in [t for t, _ in glyphs.nearest("l", 3)]


def test_the_artifact_reloads_and_belongs_to_its_tokenizer(glyphs, ngram_tokenizer, tmp_path):
    from tokensmith.testing import tiny_tokenizer

    path = save_table(tmp_path / "glyphs.safetensors", glyphs)
    again = load_table(path, ngram_tokenizer, width=32)
    assert torch.equal(again.table, glyphs.table) and again.texts == glyphs.texts
    assert again.config["tokenizer_fingerprint"] == ngram_tokenizer.fingerprint()
    with pytest.raises(IncompatibleComponentsError, match="made for tokenizer"):
        load_table(path, tiny_tokenizer())
    with pytest.raises(IncompatibleComponentsError, match="32 wide"):
        load_table(path, ngram_tokenizer, width=64)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / "bad.safetensors").write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError):
        load_table(tmp_path / "bad.safetensors", ngram_tokenizer)
