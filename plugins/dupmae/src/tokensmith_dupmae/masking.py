"""The two masks of DupMAE (Xiao & Liu, 2022, "RetroMAE v2: Duplex Masked Auto-Encoder for
Pre-Training Retrieval-Oriented Language Models", arXiv 2211.08769), drawn afresh for every batch.

- **Encoder**: whole-word masking of the ordinary tokens at ``encoder_ratio`` (paper: 0.3). Words
  are WordPiece words (a ``##`` piece belongs to the word before it); whole words are taken in a
  random order while they fit in ``round(ratio · n)`` tokens (n ordinary tokens, at least 1), and
  each chosen token is replaced BERT-style: 80% ``[MASK]``, 10% a random ordinary token, 10% kept.
  The encoder MLM loss predicts the original token at every chosen position.
- **Decoder** (RetroMAE's enhanced decoding, its Eq. 7): a position-specific attention mask.
  Row ``i`` (the query of position i) sees position 0 (the sentence embedding h_c) always and a
  random sample of the other positions, never itself: of its candidates ``C_i`` (every attended
  position except 0 and i) exactly ``round(decoder_ratio · |C_i|)`` are hidden (paper: 0.5), a
  fresh sample per row. Every ordinary token is a reconstruction target of the decoder.

``round`` is half-up (``floor(x + 0.5)``), so the counts are exact and documented.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

COMPONENT = "model 'dupmae'"
#: BERT's replacement of a chosen encoder token: [MASK], a random token, or the token itself
MASK_SHARE, RANDOM_SHARE = 0.8, 0.1


def round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


@attrs.frozen
class DuplexMasks:
    """What one batch's draw gives: the encoder's (masked) input and MLM labels, the decoder's
    per-row visibility ``(batch, L, L)`` (True: row i may attend to position j) and its labels."""

    encoder_input_ids: Any
    encoder_labels: Any
    decoder_visible: Any
    decoder_labels: Any


def word_spans(positions: list[int], continuation: list[bool]) -> list[list[int]]:
    """Group ordinary positions into whole words: a ``##`` piece right after an ordinary token
    joins that token's word."""
    words: list[list[int]] = []
    for k, pos in enumerate(positions):
        if words and continuation[k] and positions[k - 1] == pos - 1:
            words[-1].append(pos)
        else:
            words.append([pos])
    return words


def encoder_mask(
    input_ids: Any,
    ordinary: Any,
    continuation: Any,
    *,
    ratio: float,
    mask_id: int,
    replacement_ids: Any,
    generator: Any = None,
) -> tuple[Any, Any]:
    """Whole-word masking of ``input_ids`` (``(batch, L)``) at ``ratio``: the masked input and the
    labels (the original id where chosen, IGNORE_INDEX elsewhere). ``ordinary`` is True on the
    tokens that may be chosen; ``continuation`` is True on ``##`` pieces; a random replacement is
    drawn from ``replacement_ids``."""
    import torch

    from tokensmith import IGNORE_INDEX

    masked_input = input_ids.clone()
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row in range(input_ids.shape[0]):
        positions = ordinary[row].nonzero().flatten().tolist()
        if not positions:
            continue
        target = max(1, round_half_up(ratio * len(positions)))
        words = word_spans(positions, continuation[row, positions].tolist())
        chosen: list[int] = []
        for w in torch.randperm(len(words), generator=generator).tolist():
            if len(chosen) + len(words[w]) <= target:
                chosen.extend(words[w])
            if len(chosen) == target:
                break
        index = torch.tensor(sorted(chosen), dtype=torch.long)
        labels[row, index] = input_ids[row, index]
        draw = torch.rand(len(index), generator=generator)
        to_mask = index[draw < MASK_SHARE]
        to_random = index[(draw >= MASK_SHARE) & (draw < MASK_SHARE + RANDOM_SHARE)]
        masked_input[row, to_mask] = mask_id
        if len(to_random):
            pick = torch.randint(len(replacement_ids), (len(to_random),), generator=generator)
            masked_input[row, to_random] = replacement_ids[pick].to(input_ids.device)
    return masked_input, labels


def decoder_visibility(attention_mask: Any, *, ratio: float, generator: Any = None) -> Any:
    """RetroMAE's position-specific attention mask (Eq. 7), ``(batch, L, L)`` bool: row i sees
    position 0, not itself, and all but ``round(ratio · |C_i|)`` of its candidates C_i (the
    attended positions other than 0 and i), a fresh uniform sample per row."""
    import torch

    batch, length = attention_mask.shape
    attended = attention_mask.bool()
    eye = torch.eye(length, dtype=torch.bool, device=attended.device)
    candidate = attended[:, None, :].expand(batch, length, length).clone()
    candidate[:, :, 0] = False
    candidate &= ~eye
    hidden_count = torch.floor(ratio * candidate.sum(-1).double() + 0.5).long()  # round half up
    scores = torch.rand(batch, length, length, generator=generator).to(attended.device)
    scores = scores.masked_fill(~candidate, float("inf"))  # non-candidates rank after every candidate
    rank = scores.argsort(-1).argsort(-1)
    hidden = candidate & (rank < hidden_count[..., None])
    visible = candidate & ~hidden
    visible[:, :, 0] = True
    return visible


def duplex_masks(
    input_ids: Any,
    attention_mask: Any,
    ordinary: Any,
    continuation: Any,
    *,
    encoder_ratio: float,
    decoder_ratio: float,
    mask_id: int,
    replacement_ids: Any,
    generator: Any = None,
) -> DuplexMasks:
    """Both masks of one batch of ``[CLS] ... [SEP]`` rows (right-padded)."""
    from tokensmith import IGNORE_INDEX

    enc_ids, enc_labels = encoder_mask(
        input_ids,
        ordinary,
        continuation,
        ratio=encoder_ratio,
        mask_id=mask_id,
        replacement_ids=replacement_ids,
        generator=generator,
    )
    visible = decoder_visibility(attention_mask, ratio=decoder_ratio, generator=generator)
    dec_labels = input_ids.masked_fill(~ordinary, IGNORE_INDEX)
    return DuplexMasks(enc_ids, enc_labels, visible, dec_labels)
