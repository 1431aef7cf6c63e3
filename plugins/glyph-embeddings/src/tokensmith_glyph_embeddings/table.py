"""The frozen glyph embedding table of Bochkov (TMLR 2025, arXiv 2507.04886), step 3: the
rendered bits of every token projected by PCA over all tokens to the model width ``d`` and
each row L2-normalised; and its safetensors artifact, tied to the tokenizer by fingerprint.

PCA (the paper's projection): with ``X`` the ``N x 1024`` bit matrix and ``mu`` its mean row,
``C = (X - mu)^T (X - mu) / (N - 1)``; ``V_d`` the eigenvectors of the ``d`` largest
eigenvalues of ``C`` (eq. 1), the scores are ``Z = (X - mu) V_d`` (eq. 2) and the table rows
``e_i = z_i / ||z_i||_2`` (eq. 3). Each component's sign is fixed so that its largest-magnitude
loading is positive, which makes the table a function of the images alone.
"""

from __future__ import annotations

from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    IncompatibleComponentsError,
    InputError,
    check_vocabulary,
    load_artifact,
    save_artifact,
)

from .glyphs import flatten, load_glyphs, render

PLUGIN = "tokensmith-glyph-embeddings"


def plugin_version() -> str:
    return _version(PLUGIN)


def pca_scores(x: Any, d: int, *, component: str = "glyph PCA") -> tuple[Any, Any]:
    """``(Z, explained)``: the ``N x d`` PCA scores of the rows of ``x`` (eqs. 1-2, float64) and
    the fraction of the total variance each of the ``d`` components explains."""
    import torch

    x = x.to(torch.float64)
    n, features = x.shape
    if d > min(n - 1, features):
        raise IncompatibleComponentsError(
            f"PCA to d = {d} needs more than {d} tokens and at least {d} features; got {n} tokens of "
            f"{features} bits", component=component,
            hint="use a larger vocabulary (more n-grams) or a narrower model")
    centred = x - x.mean(dim=0, keepdim=True)
    covariance = centred.T @ centred / (n - 1)
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    values, vectors = values.flip(0)[:d], vectors.flip(1)[:, :d]
    biggest = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[biggest, torch.arange(d)])
    vectors = vectors * torch.where(signs == 0, torch.ones_like(signs), signs)
    total = covariance.diagonal().sum()
    explained = values.clamp_min(0) / total if float(total) > 0 else torch.zeros(d, dtype=torch.float64)
    return centred @ vectors, explained


def l2_rows(z: Any, texts: list[str], *, component: str = "glyph PCA") -> Any:
    """Every row divided by its L2 norm (eq. 3); a row of norm 0 (a token whose image is the
    mean image) has no direction and is an error rather than a silent zero."""
    norms = z.norm(dim=1, keepdim=True)
    zero = (norms[:, 0] <= 1e-12).nonzero().flatten().tolist()
    if zero:
        shown = ", ".join(repr(texts[i]) for i in zero[:5])
        raise InputError(f"{len(zero)} token(s) project to the zero vector ({shown}): their image is the "
                         "mean image", component=component, hint="use a larger, more varied vocabulary")
    return z / norms


def token_texts(tokenizer: Any) -> list[str]:
    """The string each id is rendered from: its text (the byte view as UTF-8), a special token's
    literal, or ``<0xNN..>`` for bytes that are not UTF-8 text on their own (a byte-fallback
    token of a lead byte, a byte-level BPE fragment)."""
    specials = tokenizer.special_tokens
    out = []
    for i, raw in enumerate(tokenizer.byte_table):
        if raw is None:
            out.append(specials.get(i) or f"<special {i}>")
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        out.append(text if text else "<0x" + raw.hex().upper() + ">")
    return out


@attrs.frozen
class GlyphTable:
    """A glyph embedding table and how it was made."""

    table: Any  # (vocab, d) float32, unit rows
    texts: tuple[str, ...]
    explained: tuple[float, ...]  # variance fraction per component
    missing: tuple[str, ...]  # characters Unifont has no glyph for (drawn as one tofu box)
    config: dict[str, Any]

    def nearest(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` tokens nearest ``text``'s row in cosine (the rows are unit vectors)."""
        import torch

        if text not in self.texts:
            raise InputError(f"{text!r} is not a token of this table", component="glyph table")
        cos = self.table @ self.table[self.texts.index(text)]
        out: list[tuple[str, float]] = []
        # several ids can spell one string (a byte-fallback <0x41> and the monogram "A"): one entry each
        for j in torch.argsort(cos, descending=True).tolist():
            if self.texts[j] != text and all(self.texts[j] != t for t, _ in out):
                out.append((self.texts[j], float(cos[j])))
            if len(out) == k:
                break
        return out

    def cosine(self, a: str, b: str) -> float:
        return float(self.table[self.texts.index(a)] @ self.table[self.texts.index(b)])


def build_table(tokenizer: Any, width: int, *, registry: Any, glyph_file: Path | None, augment: bool,
                rotation: float, shift: int, noise: float, blur: float, seed: int,
                component: str = "embedding 'glyph-embeddings'") -> GlyphTable:
    """Render every token of ``tokenizer``, flatten in polar snake order, PCA to ``width``, L2
    (the render settings are the ``glyph-embeddings`` provider's parameters)."""
    bank = load_glyphs(registry, glyph_file)
    texts = token_texts(tokenizer)
    images = render(texts, bank, augment=augment, rotation=rotation, shift=shift, noise=noise, blur=blur,
                    seed=seed)
    scores, explained = pca_scores(flatten(images), width, component=component)
    table = l2_rows(scores, texts, component=component).float()
    missing = sorted({ch for t in texts for ch in t if not bank.has(ch)})
    config = {"width": width, "augment": augment, "rotation": rotation, "shift": shift, "noise": noise,
              "blur": blur, "seed": seed, "glyph_size": 32, "flatten": "polar-snake", "glyphs": bank.source,
              "vocab_size": tokenizer.vocab_size, "tokenizer_fingerprint": tokenizer.fingerprint()}
    return GlyphTable(table, tuple(texts), tuple(explained.tolist()), tuple(missing), config)


def save_table(path: str | Path, glyphs: GlyphTable) -> Path:
    """The table as a safetensors artifact (atomic), with the render settings and the tokenizer's
    fingerprint in its metadata."""
    return save_artifact(path, {"table": glyphs.table}, plugin=PLUGIN, version=plugin_version(),
                         config={**glyphs.config, "explained": list(glyphs.explained),
                                 "missing": list(glyphs.missing), "texts": list(glyphs.texts)})


def load_table(path: str | Path, tokenizer: Any, *, width: int | None = None,
               component: str = "embedding 'glyph-embeddings'") -> GlyphTable:
    """A saved table, verified (content hash, plugin) and checked against ``tokenizer``: another
    tokenizer's table (fingerprint or row count) or another width is an error."""
    tensors, meta = load_artifact(path, plugin=PLUGIN)
    config = dict(meta["config"])
    table = tensors.get("table")
    if table is None or table.dim() != 2:
        raise IncompatibleComponentsError(f"artifact {str(path)!r} holds no (vocab, width) 'table'",
                                          component=component)
    expected = tokenizer.fingerprint()
    if config.get("tokenizer_fingerprint") != expected:
        raise IncompatibleComponentsError(
            f"the glyph table {str(path)!r} was made for tokenizer "
            f"{str(config.get('tokenizer_fingerprint'))[:12]}, not this one ({expected[:12]})",
            component=component,
            hint="build the table again for this tokenizer (leave `path` unset) and save it")
    check_vocabulary(table, tokenizer, component=component, what="the glyph table")
    if width is not None and table.shape[1] != width:
        raise IncompatibleComponentsError(f"the glyph table {str(path)!r} is {table.shape[1]} wide but "
                                          f"the model is {width}", component=component,
                                          hint="build a table of the model's width")
    texts = tuple(config.pop("texts", token_texts(tokenizer)))
    explained = tuple(config.pop("explained", ()))
    missing = tuple(config.pop("missing", ()))
    return GlyphTable(table.float(), texts, explained, missing, config)
