"""The ZeTT hypernetwork, the decomposition of new tokens, and its safetensors artifacts.

Minixhofer, Ponti & Vulić, "Zero-Shot Tokenizer Transfer" (NeurIPS 2024, arXiv 2405.07883),
Section 3 ("Hypernetwork architecture"): a new token t is decomposed by the *original*
tokenizer into pieces T_a(t) = (a_1 .. a_n), n <= ``surface_maxlen`` (the paper's
``hn_surface_maxlen = 7``); the pieces are embedded with the frozen source embeddings (input and
output rows concatenated when the model is untied), rescaled, projected (Linear ->
ProjectorBlock), run through a small RoBERTa-style encoder, and the first position is projected
to the predicted input embedding E_in(t) (and output embedding E_out(t) for an untied model).

``residual_mean`` (off by default) is a departure from the paper, for hypernetworks trained with
little compute: the prediction is the mean of the pieces' source rows (FVT, Gee et al. 2022) plus
the encoder's correction, whose output projection starts at zero. So before any training a
single-piece token maps exactly to its source row (invariant (ii)) and a multi-piece token to the
FVT mean, and training only has to learn what improves on that. The paper's hypernetwork is
initialised at random and learns composition from the LM loss over 200k steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokensmith import (
    ConfigError,
    IncompatibleComponentsError,
    Tokenizer,
    UnrepresentableTextError,
    load_artifact,
    save_artifact,
    subtoken_mean,
)

PLUGIN = "tokensmith-zett"
ARTIFACT_VERSION = "1"
COMPONENT = "zett"


def decompose(piece: bytes, old: Tokenizer, by_bytes: dict[bytes, int], maxlen: int) -> tuple[int, ...]:
    """T_a(t): the original tokenizer's tokens of the surface form ``piece`` (at most ``maxlen``:
    the paper truncates longer decompositions). A byte string that is not valid UTF-8 (a byte-level
    piece cut inside a character) cannot be given to the tokenizer as text; it is decomposed by
    longest match over the original byte vocabulary instead, which spells it exactly too."""
    if piece in by_bytes:
        return (by_bytes[piece],)
    try:
        ids = tuple(old.encode(piece.decode("utf-8")).ids)
        if old.decode_bytes(ids) == piece:
            return ids[:maxlen]
    except (UnicodeDecodeError, UnrepresentableTextError):
        pass  # not text, or text with a byte the tokenizer has no token for: the byte match below says which
    out, i = [], 0
    while i < len(piece):
        for j in range(len(piece), i, -1):
            if piece[i:j] in by_bytes:
                out.append(by_bytes[piece[i:j]])
                i = j
                break
        else:
            raise IncompatibleComponentsError(
                f"byte {piece[i]:#04x} of the token {piece!r} has no token in tokenizer {old.name!r}",
                component=COMPONENT, hint="the original tokenizer must cover every byte (a byte-level BPE)")
    return tuple(out[:maxlen])


def byte_index(old: Tokenizer) -> dict[bytes, int]:
    """bytes -> the lowest non-special id that spells them, for the decomposition and for finding
    the tokens a new vocabulary shares with the original one."""
    index: dict[bytes, int] = {}
    specials = set(old.special_tokens)
    for i, b in enumerate(old.byte_table):
        if b and i not in specials and b not in index:
            index[b] = i
    return index


class ProjectorBlock(nn.Module):
    """The paper's ProjectorBlock: a 2-layer GELU MLP with a residual connection and LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.fc2(nn.functional.gelu(self.fc1(x))))


class HyperNetwork(nn.Module):
    """H_θ: pieces of new tokens -> (E_in, E_out). The source embeddings are a frozen buffer
    (the base model's rows), never trained; every parameter here is the hypernetwork's own."""

    def __init__(self, source_in: torch.Tensor, source_out: torch.Tensor | None, *, layers: int = 3,
                 heads: int = 4, hidden: int | None = None, surface_maxlen: int = 7,
                 residual_mean: bool = False) -> None:
        super().__init__()
        d = source_in.shape[1]
        hidden = hidden or d
        if hidden % heads:
            raise ConfigError(f"hidden size {hidden} is not divisible by {heads} heads", component=COMPONENT)
        self.tied = source_out is None
        self.surface_maxlen = surface_maxlen
        source = source_in if self.tied else torch.cat([source_in, source_out], dim=1)
        self.register_buffer("source", source.detach().clone().float(), persistent=False)
        # Rescaling (the paper rescales the source embeddings before the projection): the table is
        # standardised by its own mean and spread, and predictions are mapped back with the same
        # statistics, so the identity warm-up starts from a well-scaled regression problem.
        self.register_buffer("mean", source.mean(0).detach().float(), persistent=False)
        self.register_buffer("std", source.std(0).clamp(min=1e-6).detach().float(), persistent=False)
        self.project = nn.Linear(source.shape[1], hidden)
        self.projector = ProjectorBlock(hidden)
        self.position = nn.Embedding(surface_maxlen, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=4 * hidden, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_in = nn.Linear(hidden, d)
        self.out_out = None if self.tied else nn.Linear(hidden, d)
        self.dim = d
        self.residual_mean = residual_mean
        if residual_mean:
            # the correction starts at zero: the untrained hypernetwork *is* FVT (mean of the pieces)
            for head in (self.out_in, self.out_out):
                if head is not None:
                    nn.init.zeros_(head.weight)
                    nn.init.zeros_(head.bias)

    def pack(self, pieces: Sequence[tuple[int, ...]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pieces as a padded id matrix [V, L] and its padding mask (True = padding)."""
        width = max(min(len(p), self.surface_maxlen) for p in pieces)
        ids = torch.zeros(len(pieces), width, dtype=torch.long)
        pad = torch.ones(len(pieces), width, dtype=torch.bool)
        for k, p in enumerate(pieces):
            p = p[: self.surface_maxlen]
            ids[k, : len(p)] = torch.tensor(p)
            pad[k, : len(p)] = False
        return ids.to(self.source.device), pad.to(self.source.device)

    def forward(self, ids: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = (self.source[ids] - self.mean) / self.std
        x = self.projector(self.project(x)) + self.position.weight[: ids.shape[1]]
        h = self.encoder(x, src_key_padding_mask=pad)[:, 0]  # the first position, as the paper
        d = self.dim
        if self.residual_mean:
            # the departure: the pieces' mean source row (FVT) + the encoder's correction (in the
            # standardised space); padded positions are left out of the mean
            base = subtoken_mean(self.source, ids, ~pad)
        else:
            base = self.mean.expand(len(ids), -1)
        e_in = self.out_in(h) * self.std[:d] + base[:, :d]
        if self.tied:
            return e_in, None
        return e_in, self.out_out(h) * self.std[d:] + base[:, d:]

    def embed(self, pieces: Sequence[tuple[int, ...]], *, batch: int | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``forward`` over every decomposition, run in groups of equal length, in the input order.
        Padding is masked out of the encoder, so a padded matrix gives the same rows; but every
        padded position still costs the projector, attention and MLP, and most tokens of a sampled
        vocabulary are one or two original pieces while the longest is ``surface_maxlen``: grouping
        by length does only the work that counts. ``batch`` caps a group's size (memory only)."""
        lengths = [min(len(p), self.surface_maxlen) for p in pieces]
        groups: dict[int, list[int]] = {}
        for k, n in enumerate(lengths):
            groups.setdefault(n, []).append(k)
        ins, outs, order = [], [], []
        for n in sorted(groups):
            members = groups[n]
            step = batch or len(members)
            for start in range(0, len(members), step):
                chunk = members[start:start + step]
                e_in, e_out = self(*self.pack([pieces[k] for k in chunk]))
                ins.append(e_in)
                outs.append(e_out)
                order.extend(chunk)
        where = torch.empty(len(order), dtype=torch.long)
        where[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        where = where.to(self.source.device)
        e_in = torch.cat(ins)[where]
        return e_in, (None if self.tied else torch.cat(outs)[where])

    def predict(self, pieces: Sequence[tuple[int, ...]], *, batch: int = 4096
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embeddings for every decomposition, without gradients, in chunks (memory only)."""
        with torch.no_grad():
            return self.embed(pieces, batch=batch)


def hypernetwork_for(model: Any, *, layers: int, heads: int, hidden: int | None,
                     surface_maxlen: int, residual_mean: bool = False) -> HyperNetwork:
    """A fresh hypernetwork over ``model``'s own (frozen) embedding rows."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied = head is not None and head.weight is not emb
    return HyperNetwork(emb.detach(), head.weight.detach() if untied else None, layers=layers, heads=heads,
                        hidden=hidden, surface_maxlen=surface_maxlen, residual_mean=residual_mean
                        ).to(emb.device)


# -- artifacts ---------------------------------------------------------------------------

def save_hypernetwork(path: str | Path, hn: HyperNetwork, tokenizer: Tokenizer, *,
                      config: dict[str, Any] | None = None) -> Path:
    """The hypernetwork's parameters as a safetensors artifact whose metadata names the base
    tokenizer (fingerprint, name, size) and the architecture, so it is rebuilt and checked on load.
    The source embeddings are not saved: they are the base model's, given again at load time."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in hn.state_dict().items()}
    meta = {"tokenizer": tokenizer.fingerprint(), "tokenizer_name": tokenizer.name,
            "vocab_size": tokenizer.vocab_size, "dim": hn.dim, "tied": hn.tied,
            "layers": len(hn.encoder.layers), "heads": hn.encoder.layers[0].self_attn.num_heads,
            "hidden": hn.project.out_features, "surface_maxlen": hn.surface_maxlen,
            "residual_mean": hn.residual_mean, **(config or {})}
    return save_artifact(path, tensors, plugin=PLUGIN, version=ARTIFACT_VERSION, config=meta)


def load_hypernetwork(path: str | Path, model: Any, tokenizer: Tokenizer) -> HyperNetwork:
    """Rebuild a saved hypernetwork over ``model``'s embeddings, after checking that ``tokenizer``
    (the model's own, original tokenizer) is the one it was trained with: another vocabulary, or a
    model of another width or tying, is an ``IncompatibleComponentsError``."""
    tensors, meta = load_artifact(path, plugin=PLUGIN, version=ARTIFACT_VERSION)
    config = meta.get("config", {})
    if config.get("tokenizer") != tokenizer.fingerprint():
        raise IncompatibleComponentsError(
            f"hypernetwork {str(path)!r} was trained for base tokenizer {config.get('tokenizer_name')!r} "
            f"({config.get('vocab_size')} ids, fingerprint {str(config.get('tokenizer'))[:12]}), not "
            f"{tokenizer.name!r} ({tokenizer.vocab_size} ids, {tokenizer.fingerprint()[:12]})",
            component=COMPONENT, hint="load the base model and tokenizer the hypernetwork was trained on")
    hn = hypernetwork_for(model, layers=int(config["layers"]), heads=int(config["heads"]),
                          hidden=int(config["hidden"]), surface_maxlen=int(config["surface_maxlen"]),
                          # artifacts from before the option have none: the paper's architecture
                          residual_mean=bool(config.get("residual_mean", False)))
    if (hn.dim, hn.tied) != (config["dim"], config["tied"]):
        raise IncompatibleComponentsError(
            f"hypernetwork {str(path)!r} predicts {config['dim']}-wide rows (tied={config['tied']}), the "
            f"model has {hn.dim} (tied={hn.tied})", component=COMPONENT)
    device = hn.source.device
    hn.load_state_dict({k: v.to(device) for k, v in tensors.items()}, strict=True)
    return hn.eval()
