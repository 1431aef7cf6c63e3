"""Rendering token strings from GNU Unifont glyphs: step 2 of Bochkov, "Emergent Semantics
Beyond Token Embeddings: Transformer LMs with Frozen Visual Unicode Representations" (TMLR 2025,
arXiv 2507.04886).

For every token: each character's Unifont bitmap (16 px high, 8 or 16 px wide) is drawn at
size 32 on a 32x32 cell, the cells are concatenated left to right and the strip is resized to
32x32; a deterministic augmentation (rotation, shift, noise, slight blur; none for complex
scripts) is applied, the image is binarised and its 1,024 bits are flattened in the "polar
snake" order. The glyphs are read through the ``unifont`` dataset of tokensmith-datasets
(Debian ``unifont``), so a missing font is that dataset's ``DataUnavailableError`` with the
install command.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

SIZE = 32  # the paper's glyph size: cells and the final image are 32x32
UNIFONT_HEIGHT = 16

# Scripts whose glyphs are dense or joined (CJK, Hangul, Arabic, Brahmic, Thai...): the paper
# switches the augmentation off for them, since a few pixels of rotation or blur merge strokes.
COMPLEX_SCRIPTS = (
    (0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF),  # Arabic
    (0x0900, 0x0DFF),  # Devanagari .. Sinhala
    (0x0E00, 0x0FFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF),  # Hangul
    (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),  # CJK
    (0xFB50, 0xFDFF), (0xFE70, 0xFEFF),  # Arabic presentation forms
)


def is_complex(text: str) -> bool:
    """Whether any character of ``text`` belongs to a complex script (no augmentation)."""
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in COMPLEX_SCRIPTS)


class GlyphBank:
    """Every Unifont glyph as a 32x32 cell: the 16-px bitmap scaled 2x (nearest neighbour, so
    pixels stay pixels), a half-width glyph centred in its cell."""

    def __init__(self, glyphs: dict[int, tuple[int, tuple[tuple[int, ...], ...]]], source: str) -> None:
        import torch

        self.source = source
        self._glyphs = glyphs
        self._cells: dict[int, Any] = {}  # made on first use: a vocabulary needs a few hundred
        # A code point Unifont has no glyph for (astral characters, a few unassigned ones) is drawn
        # as a "tofu" box, the usual stand-in of a renderer; such tokens share one image.
        tofu = torch.zeros(SIZE, SIZE, dtype=torch.uint8)
        tofu[4:28, 6:26] = 1
        tofu[6:26, 8:24] = 0
        self.tofu = tofu

    def __len__(self) -> int:
        return len(self._glyphs)

    def has(self, ch: str) -> bool:
        return ord(ch) in self._glyphs

    def cell(self, ch: str) -> Any:
        import torch

        code = ord(ch)
        if code not in self._glyphs:
            return self.tofu
        cell = self._cells.get(code)
        if cell is None:
            width, image = self._glyphs[code]
            bitmap = torch.zeros(UNIFONT_HEIGHT, 16, dtype=torch.uint8)
            offset = (16 - width) // 2
            bitmap[:, offset:offset + width] = torch.tensor(image, dtype=torch.uint8)
            cell = self._cells[code] = bitmap.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)
        return cell


_BANKS: dict[str, GlyphBank] = {}


def load_glyphs(registry: Any, path: Path | str | None = None) -> GlyphBank:
    """The glyphs of the ``unifont`` dataset (``path``: another ``.hex`` file), read once per
    process and file. A missing font raises the dataset's ``DataUnavailableError`` naming the
    package and its install command."""
    spec: dict[str, Any] = {"type": "unifont", "eval_fraction": 0.0}
    if path is not None:
        spec["path"] = str(path)
    key = str(Path(path).resolve()) if path is not None else ""
    if key in _BANKS:
        return _BANKS[key]
    dataset = registry.build("dataset", spec)
    glyphs = {e["codepoint"]: (e["width"], e["image"]) for e in dataset.examples("all")}
    bank = GlyphBank(glyphs, key or "/usr/share/unifont/unifont.hex")
    _BANKS[key] = bank
    return bank


def strip_image(text: str, bank: GlyphBank) -> Any:
    """The token's cells concatenated horizontally and resized to 32x32 (area averaging, so a
    long token becomes grey strokes that binarisation thins), as float in [0, 1]."""
    import torch

    if not text:
        from tokensmith import InputError

        raise InputError("a token with no characters has no glyph", component="glyph rendering")
    strip = torch.cat([bank.cell(ch) for ch in text], dim=1).float()
    if len(text) == 1:
        return strip
    return torch.nn.functional.interpolate(strip[None, None], size=(SIZE, SIZE), mode="area")[0, 0]


def _seed_of(text: str, seed: int) -> int:
    """A per-token seed from the token's text: the same string gets the same augmentation in
    any vocabulary, any order and any process."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8, key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _gaussian_kernel(sigma: float) -> Any:
    import torch

    x = torch.tensor([-1.0, 0.0, 1.0])
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    return (k[:, None] * k[None, :])[None, None]


def render(texts: list[str], bank: GlyphBank, *, augment: bool, rotation: float, shift: int, noise: float,
           blur: float, seed: int) -> Any:
    """Binary 32x32 images (``uint8``, ``(len(texts), 32, 32)``) of ``texts`` (the settings are
    the ``glyph-embeddings`` provider's parameters, declared there with their defaults).

    The augmentation, per token from its own seeded generator: a rotation uniform in
    ``[-rotation, rotation]`` degrees and a shift of ``-shift..shift`` whole pixels on each
    axis (one bilinear resampling), a 3x3 Gaussian blur of standard deviation ``blur`` pixels,
    Gaussian pixel noise of standard deviation ``noise``; then binarisation at 0.5. Tokens of
    complex scripts are only binarised."""
    import torch

    images = torch.stack([strip_image(t, bank) for t in texts]) if texts else torch.zeros(0, SIZE, SIZE)
    if not augment or not texts:
        return (images > 0.5).to(torch.uint8)
    n = len(texts)
    from tokensmith import progress

    thetas = torch.zeros(n, 2, 3)
    noises = torch.zeros(n, SIZE, SIZE)
    active = torch.zeros(n, dtype=torch.bool)
    for i, text in enumerate(progress(texts, total=n, desc="augmenting glyphs", unit="token")):
        if is_complex(text):
            thetas[i, 0, 0] = thetas[i, 1, 1] = 1.0
            continue
        active[i] = True
        g = torch.Generator().manual_seed(_seed_of(text, seed))
        angle = math.radians(float(torch.rand((), generator=g)) * 2 * rotation - rotation)
        dx, dy = (int(v) for v in torch.randint(-shift, shift + 1, (2,), generator=g))
        # grid_sample reads the input at theta @ (output position): moving the glyph by (dx, dy)
        # pixels reads from (x - dx, y - dy), in coordinates where the image spans [-1, 1]
        cos, sin = math.cos(angle), math.sin(angle)
        thetas[i] = torch.tensor([[cos, -sin, -2 * dx / SIZE], [sin, cos, -2 * dy / SIZE]])
        noises[i] = torch.randn(SIZE, SIZE, generator=g) * noise
    grid = torch.nn.functional.affine_grid(thetas, [n, 1, SIZE, SIZE], align_corners=False)
    moved = torch.nn.functional.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros",
                                            align_corners=False)
    if blur > 0:
        moved = torch.nn.functional.conv2d(moved, _gaussian_kernel(blur), padding=1)
    augmented = moved[:, 0] + noises
    out = torch.where(active[:, None, None], augmented, images)
    return (out > 0.5).to(torch.uint8)


def polar_snake_order(size: int = SIZE) -> list[int]:
    """The "polar snake" flatten order of a ``size`` x ``size`` image, as pixel indices
    (row-major numbering): concentric square rings from the centre outwards, each ring walked
    by angle around the centre, clockwise and counter-clockwise in turn, so that consecutive
    bits are neighbouring pixels and the bits near the glyph's centre come first."""
    centre = (size - 1) / 2
    rings: list[list[tuple[float, int]]] = [[] for _ in range(size // 2)]
    for y in range(size):
        for x in range(size):
            dx, dy = x - centre, y - centre
            ring = int(max(abs(dx), abs(dy)))
            rings[ring].append((math.atan2(dy, dx) % (2 * math.pi), y * size + x))
    order: list[int] = []
    for r, ring in enumerate(rings):
        ring.sort(reverse=bool(r % 2))
        order.extend(index for _, index in ring)
    return order


def flatten(images: Any) -> Any:
    """``(N, 32, 32)`` images as ``(N, 1024)`` bit vectors in the polar snake order."""
    import torch

    order = torch.tensor(polar_snake_order(images.shape[-1]))
    return images.reshape(images.shape[0], -1)[:, order]
