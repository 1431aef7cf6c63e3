"""Rendering: the polar snake order, binary deterministic images, the augmentation's scope, and
a missing font as a typed error naming the install command."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_glyph_embeddings.embedding import GlyphEmbeddings
from tokensmith_glyph_embeddings.glyphs import SIZE, flatten, load_glyphs, polar_snake_order
from tokensmith_glyph_embeddings.glyphs import render as _render

from tokensmith import DataUnavailableError


def render(texts, bank, **settings):
    """Rendering with the provider's parameters (its defaults unless given)."""
    return _render(texts, bank, **GlyphEmbeddings(**settings).render_settings())


def test_polar_snake_is_a_permutation_walking_between_neighbours_from_the_centre():
    order = polar_snake_order()
    assert sorted(order) == list(range(SIZE * SIZE))
    points = [(i // SIZE, i % SIZE) for i in order]
    steps = [max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in zip(points, points[1:])]
    assert max(steps) == 1  # a snake: every next bit is an adjacent pixel, rings included
    assert set(points[:4]) == {(15, 15), (15, 16), (16, 15), (16, 16)}  # the centre first
    assert set(points[-4 * (SIZE - 1):]) == {p for p in points if 0 in p or SIZE - 1 in p}  # border last


def test_flatten_applies_the_order():
    images = torch.arange(2 * SIZE * SIZE).reshape(2, SIZE, SIZE)
    flat = flatten(images)
    assert flat[1].tolist() == [int(images[1].flatten()[i]) for i in polar_snake_order()]


@settings(max_examples=10, deadline=None)
@given(texts=st.lists(st.text(alphabet="Ol01Iaé漢 ,th", min_size=1, max_size=3), min_size=1, max_size=6,
                      unique=True), seed=st.integers(0, 2**32))
def test_rendering_is_binary_deterministic_and_per_token(bank, texts, seed):
    images = render(texts, bank, shift=2, seed=seed)
    assert images.shape == (len(texts), SIZE, SIZE) and set(images.unique().tolist()) <= {0, 1}
    assert torch.equal(images, render(texts, bank, shift=2, seed=seed))
    # a token's image depends on its text and the seed only, not on the other tokens or the order
    reversed_images = render(texts[::-1], bank, shift=2, seed=seed)
    assert torch.equal(reversed_images.flip(0), images)
    assert torch.equal(render(texts[:1], bank, shift=2, seed=seed)[0], images[0])


def test_augmentation_moves_latin_glyphs_but_never_complex_scripts(bank):
    latin = ["O", "l", "th", "e", "B", "x"]
    plain = render(latin, bank, augment=False)
    assert not torch.equal(render(latin, bank, shift=2, seed=1), plain)
    assert not torch.equal(render(latin, bank, shift=2, seed=1), render(latin, bank, shift=2, seed=2))
    complex_ = ["漢", "한", "ب", "क"]
    assert torch.equal(render(complex_, bank, shift=2, seed=3), render(complex_, bank, augment=False))


def test_a_monogram_is_its_unifont_bitmap_scaled_twice(bank, registry):
    dataset = registry.build("dataset", {"type": "unifont", "eval_fraction": 0.0})
    glyph = next(e for e in dataset.examples("all") if e["char"] == "A")
    image = render(["A"], bank, augment=False)[0]
    bitmap = torch.tensor(glyph["image"], dtype=torch.uint8)  # 16 x 8
    expected = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
    expected[:, 8:24] = bitmap.repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert glyph["width"] == 8 and torch.equal(image, expected)


def test_a_character_without_a_glyph_is_drawn_as_one_box(bank):
    astral = render(["\U0001F642", "\U00010348"], bank, augment=False)
    assert torch.equal(astral[0], astral[1]) and astral[0].sum() > 0
    assert not bank.has("\U0001F642") and bank.has("A")


def test_a_missing_font_is_a_data_unavailable_error_naming_the_install_command(registry, tmp_path):
    with pytest.raises(DataUnavailableError) as info:
        load_glyphs(registry, tmp_path / "no-unifont.hex")
    assert "apt-get install -y unifont" in str(info.value) and "unifont" in str(info.value)
