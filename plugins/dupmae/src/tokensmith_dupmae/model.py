"""The DupMAE pre-training model (Xiao & Liu, 2022, arXiv 2211.08769; its [CLS] decoder is
RetroMAE's, Xiao et al. 2022, arXiv 2205.12035).

One BERT encoder, read two ways:

- **[CLS] decoding**: the last-layer [CLS] vector h_c goes to a *one-layer* transformer decoder
  with RetroMAE's enhanced decoding (two streams): the query stream is ``h_c + p_i`` for every
  position i, the key/value stream ``[h_c; e(x_1) + p_1; ...; e(x_N) + p_N]`` (the encoder's
  *embedding layer* on the unmasked input: no contextual encoder state but h_c reaches the
  decoder), and each row attends through its own sampled mask (:mod:`.masking`). Its output goes
  through the encoder's MLM head to reconstruct every ordinary token (L_cls).
- **Ordinary-token (OT) decoding**: the MLM head ("linear projection unit") on every position
  but [CLS], max-pooled over the positions with padding at −1000, gives z ∈ ℝ^|V| (L_bow,
  :mod:`.objectives`).
- the encoder's own MLM loss on its whole-word-masked input (L_enc).

The forward returns these pieces (:class:`DupMAEOutput`); the ``dupmae`` objective combines them.
The model takes the tokenizer's plain ids (right-padded, as the recipe runner batches them) and
wraps each row as ``[CLS] tokens [SEP]`` itself. all-MiniLM-L6-v2 ships no MLM head (a
sentence-transformers checkpoint): the head's transform is freshly initialised and its output
layer tied to the word embeddings, as the brief says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers.utils import ModelOutput

from tokensmith import ContextLengthError, IncompatibleComponentsError, InputError

from .masking import COMPONENT, duplex_masks

#: what padded positions get before the OT max-pool (the released code's value)
POOL_PAD = -1000.0


@dataclass
class DupMAEOutput(ModelOutput):
    """``logits``: the encoder's MLM logits ``(batch, L, V)`` on its masked input;
    ``encoder_labels``; ``decoder_logits`` ``(batch, L, V)`` and ``decoder_labels``; ``bow_logits``:
    the max-pooled OT logits z ``(batch, V)``; ``input_ids`` / ``attention_mask``: the wrapped
    ``[CLS] ... [SEP]`` rows; ``ordinary_mask``: True on their ordinary tokens; ``cls``: h_c."""

    logits: Any = None
    encoder_labels: Any = None
    decoder_logits: Any = None
    decoder_labels: Any = None
    bow_logits: Any = None
    input_ids: Any = None
    attention_mask: Any = None
    ordinary_mask: Any = None
    cls: Any = None


class EnhancedDecoder(nn.Module):
    """One post-LN transformer layer whose queries and keys/values are different streams and
    whose attention mask is given per row (RetroMAE Eq. 6-8)."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise IncompatibleComponentsError(
                f"hidden size {hidden} is not a multiple of {heads} heads", component=COMPONENT
            )
        self.heads = heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.attention_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(hidden, intermediate), nn.GELU(), nn.Linear(intermediate, hidden))
        self.output_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        return x.view(b, n, self.heads, h // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key_value: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            self._split(self.query(query)),
            self._split(self.key(key_value)),
            self._split(self.value(key_value)),
        )
        attended = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=visible[:, None], dropout_p=self.dropout.p if self.training else 0.0
        )
        attended = attended.transpose(1, 2).reshape(query.shape)
        h = self.attention_norm(query + self.dropout(self.out(attended)))
        return self.output_norm(h + self.dropout(self.ffn(h)))


def _token_id(vocab: dict[str, int], token: str) -> int:
    if token not in vocab:
        raise IncompatibleComponentsError(
            f"the tokenizer has no {token} token: DupMAE needs a BERT "
            "WordPiece tokenizer ([CLS], [SEP], [MASK], [PAD])",
            component=COMPONENT,
            hint="use the encoder's own tokenizer (e.g. MiniLM's)",
        )
    return vocab[token]


class DupMAEModel(nn.Module):
    """A BERT masked LM (encoder + MLM head) with DupMAE's one-layer [CLS] decoder.

    Build it with :func:`dupmae_model` from an encoder and its tokenizer. ``forward`` draws the
    masks from ``generator`` (default: torch's global generator, which the Trainer seeds and a
    resume restores)."""

    def __init__(
        self, mlm: Any, tokenizer: Any, *, encoder_mask_ratio: float = 0.3, decoder_mask_ratio: float = 0.5
    ) -> None:
        super().__init__()
        config = mlm.config
        self.mlm = mlm
        self.tokenizer = tokenizer
        self.encoder_mask_ratio = encoder_mask_ratio
        self.decoder_mask_ratio = decoder_mask_ratio
        self.decoder = EnhancedDecoder(
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            config.layer_norm_eps,
            config.hidden_dropout_prob,
        )
        self.decoder.apply(mlm._init_weights)
        vocab = tokenizer.backend.get_vocab()
        self.cls_id, self.sep_id = _token_id(vocab, "[CLS]"), _token_id(vocab, "[SEP]")
        self.mask_id, self.pad_id = _token_id(vocab, "[MASK]"), _token_id(vocab, "[PAD]")
        rows = config.vocab_size
        if tokenizer.vocab_size > rows:
            raise IncompatibleComponentsError(
                f"the tokenizer has {tokenizer.vocab_size} ids, the encoder {rows} embedding rows",
                component=COMPONENT,
            )
        special = torch.zeros(rows, dtype=torch.bool)
        special[sorted({*tokenizer.special_ids, self.cls_id, self.sep_id, self.mask_id, self.pad_id})] = True
        special[tokenizer.vocab_size :] = True  # rows no token uses are never targets
        continuation = torch.zeros(rows, dtype=torch.bool)
        for token, i in vocab.items():
            if token.startswith("##") and i < rows:
                continuation[i] = True
        # buffers (not weights): they follow the model to its device and are rebuilt from the tokenizer
        self.register_buffer("special", special, persistent=False)
        self.register_buffer("continuation", continuation, persistent=False)
        self.register_buffer("replacement_ids", (~special).nonzero().flatten(), persistent=False)
        self.refused = frozenset({self.cls_id, self.sep_id, self.mask_id, self.pad_id})
        self.max_length = config.max_position_embeddings

    @property
    def config(self) -> Any:
        return self.mlm.config

    # -- input ---------------------------------------------------------------
    def wrap(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[CLS] tokens [SEP]`` per row, right-padded with [PAD]; refuses what is not plain text."""
        if (
            not isinstance(input_ids, torch.Tensor)
            or input_ids.dim() != 2
            or input_ids.dtype.is_floating_point
        ):
            raise InputError("input_ids must be a (batch, length) integer tensor", component=COMPONENT)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if attention_mask.shape != input_ids.shape:
            raise InputError(
                f"attention_mask has shape {tuple(attention_mask.shape)}, input_ids {tuple(input_ids.shape)}",
                component=COMPONENT,
            )
        attended = attention_mask.bool()
        lengths = attended.sum(1)
        if not bool(
            (attended == (torch.arange(input_ids.shape[1], device=input_ids.device) < lengths[:, None])).all()
        ):
            raise InputError("attention_mask must be right-padded (1s then 0s)", component=COMPONENT)
        if bool((lengths == 0).any()):
            raise InputError(
                f"row {int((lengths == 0).nonzero()[0])} has no token",
                component=COMPONENT,
                hint="leave empty texts out of the data",
            )
        ids = input_ids[attended]
        if bool(((ids < 0) | (ids >= self.special.shape[0])).any()):
            raise InputError(f"token ids must lie in [0, {self.special.shape[0]})", component=COMPONENT)
        bad = sorted({int(i) for i in ids.unique().tolist()} & self.refused)
        if bad:
            raise InputError(
                f"the input holds special id(s) {bad} ([CLS]/[SEP]/[MASK]/[PAD]): DupMAE takes "
                "plain text ids and adds [CLS] and [SEP] itself",
                component=COMPONENT,
                hint="encode the text without special tokens (tokenizer.encode does)",
            )
        longest = int(lengths.max()) + 2
        if longest > self.max_length:
            raise ContextLengthError(
                f"a row has {longest - 2} tokens; with [CLS] and [SEP] that is more than the "
                f"encoder's {self.max_length} positions",
                component=COMPONENT,
                hint="shorten the texts (or [data] max_length)",
            )
        batch = input_ids.shape[0]
        wrapped = torch.full((batch, longest), self.pad_id, dtype=torch.long, device=input_ids.device)
        wrapped[:, 0] = self.cls_id
        width = longest - 2  # columns past the longest row are padding only
        wrapped[:, 1 : width + 1][attended[:, :width]] = ids
        rows = torch.arange(batch, device=input_ids.device)
        wrapped[rows, lengths + 1] = self.sep_id
        mask = (torch.arange(longest, device=input_ids.device) < (lengths + 2)[:, None]).long()
        return wrapped, mask

    def ordinary(self, wrapped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask.bool() & ~self.special[wrapped]

    # -- the two decodings -----------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> DupMAEOutput:
        ids, mask = self.wrap(input_ids, attention_mask)
        ordinary = self.ordinary(ids, mask)
        masks = duplex_masks(
            ids,
            mask,
            ordinary,
            self.continuation[ids],
            encoder_ratio=self.encoder_mask_ratio,
            decoder_ratio=self.decoder_mask_ratio,
            mask_id=self.mask_id,
            replacement_ids=self.replacement_ids,
            generator=generator,
        )
        hidden = self.mlm.bert(input_ids=masks.encoder_input_ids, attention_mask=mask).last_hidden_state
        logits = self.mlm.cls(hidden)
        h_c = hidden[:, :1]
        decoder_logits = self.mlm.cls(self.decode(h_c, ids, masks.decoder_visible))
        return DupMAEOutput(
            logits=logits,
            encoder_labels=masks.encoder_labels,
            decoder_logits=decoder_logits,
            decoder_labels=masks.decoder_labels,
            bow_logits=ot_max_pool(logits, mask),
            input_ids=ids,
            attention_mask=mask,
            ordinary_mask=ordinary,
            cls=h_c[:, 0],
        )

    def decode(self, h_c: torch.Tensor, ids: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """Enhanced decoding: query stream h_c + p_i, key/value stream [h_c; e(x_i) + p_i]."""
        embeddings = self.mlm.bert.embeddings
        positions = embeddings.position_embeddings(torch.arange(ids.shape[1], device=ids.device))[None]
        query = h_c + positions
        key_value = torch.cat([h_c, embeddings(input_ids=ids)[:, 1:]], dim=1)
        return self.decoder(query, key_value, visible)

    # -- the representation for retrieval ----------------------------------------
    @torch.no_grad()
    def representations(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        top_k: int = 256,
        ot: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Unmasked encoding: ``cls`` (h_c), ``mean`` (mean of the attended last-layer states, as
        sentence-transformers pools MiniLM) and, with ``ot``, ``ot`` (ReLU'd OT max-pool, only its
        ``top_k`` largest entries kept) and ``aggregated`` (see :func:`aggregate`). ``ot=False``
        skips the vocabulary projection (the dense poolings alone)."""
        ids, mask = self.wrap(input_ids, attention_mask)
        training = self.training
        self.eval()  # no dropout: the representation of a text is deterministic
        try:
            hidden = self.mlm.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            logits = self.mlm.cls(hidden) if ot else None
        finally:
            self.train(training)
        weights = mask[..., None].to(hidden.dtype)
        out = {"cls": hidden[:, 0], "mean": (hidden * weights).sum(1) / weights.sum(1)}
        if logits is not None:
            out["ot"] = sparsify(torch.relu(ot_max_pool(logits, mask)), top_k)
            out["aggregated"] = aggregate(out["cls"], out["ot"])
        return out


def ot_max_pool(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """z = max over the positions but [CLS] of the MLM logits, padding masked to −1000 (the OT
    embedding before its BoW softmax); permutation-invariant in the positions it pools."""
    keep = attention_mask.bool().clone()
    keep[:, 0] = False
    return logits.masked_fill(~keep[..., None], POOL_PAD).max(dim=1).values


def sparsify(vectors: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep each row's ``top_k`` largest entries, zero the rest (the OT embedding's reduction)."""
    k = min(top_k, vectors.shape[-1])
    values, index = vectors.topk(k, dim=-1)
    return torch.zeros_like(vectors).scatter(-1, index, values)


def aggregate(cls: torch.Tensor, ot: torch.Tensor) -> torch.Tensor:
    """CLS ⊕ OT, each L2-normalised and scaled by 1/√2: unit vectors whose dot product is the mean
    of the two cosine similarities (the paper adds the two relevance scores)."""
    parts = [nn.functional.normalize(cls, dim=-1), nn.functional.normalize(ot, dim=-1)]
    return torch.cat(parts, dim=-1) / 2**0.5


def dupmae_model(
    encoder: Any,
    tokenizer: Any,
    *,
    encoder_mask_ratio: float = 0.3,
    decoder_mask_ratio: float = 0.5,
    seed: int = 0,
) -> DupMAEModel:
    """A :class:`DupMAEModel` around ``encoder`` (a transformers ``BertModel``, or a
    ``BertForMaskedLM`` whose head is used as it is). A ``BertModel``'s weights are copied into a
    ``BertForMaskedLM`` whose output layer is tied to the word embeddings and whose transform is
    initialised with ``seed``."""
    from transformers import BertForMaskedLM, BertModel

    if isinstance(encoder, BertForMaskedLM):
        mlm = encoder
    elif isinstance(encoder, BertModel):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            config = encoder.config.__class__.from_dict(encoder.config.to_dict())
            config.tie_word_embeddings = True
            mlm = BertForMaskedLM(config)
        missing, unexpected = mlm.bert.load_state_dict(encoder.state_dict(), strict=False)
        if missing or any(not k.startswith("pooler.") for k in unexpected):
            raise IncompatibleComponentsError(
                f"the encoder's weights do not fit a BERT masked LM: missing "
                f"{missing[:3]}, unexpected {unexpected[:3]}",
                component=COMPONENT,
            )
        mlm.cls.predictions.decoder.weight = mlm.bert.embeddings.word_embeddings.weight
        device = next(encoder.parameters()).device
        mlm.to(device=device, dtype=next(encoder.parameters()).dtype)
    else:
        raise IncompatibleComponentsError(
            f"DupMAE trains a BERT encoder, got {type(encoder).__name__}",
            component=COMPONENT,
            hint='use [model] source = "minilm" (BertModel)',
        )
    model = DupMAEModel(
        mlm, tokenizer, encoder_mask_ratio=encoder_mask_ratio, decoder_mask_ratio=decoder_mask_ratio
    )
    return model.to(next(mlm.parameters()).device)


def encode_texts(tokenizer: Any, texts: Sequence[str], component: str) -> list[list[int]]:
    """Plain ids of each text; an empty or token-less text is an :class:`InputError`."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text {i} is {type(text).__name__}, not str", component=component)
        ids = list(tokenizer.encode(text).ids)
        if not ids:
            raise InputError(f"text {i} ({text[:40]!r}) has no tokens", component=component)
        out.append(ids)
    return out
