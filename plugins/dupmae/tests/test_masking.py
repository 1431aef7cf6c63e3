"""DupMAE's masks: exact counts on fixed seeds, whole words, the decoder's per-row visibility."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dupmae.masking import decoder_visibility, encoder_mask, round_half_up, word_spans

from tokensmith import IGNORE_INDEX


def test_whole_word_masking_hides_round_ratio_n_tokens_in_whole_words(dupmae, batch):
    ids, mask = dupmae.wrap(batch["input_ids"], batch["attention_mask"])
    ordinary = dupmae.ordinary(ids, mask)
    continuation = dupmae.continuation[ids]
    for seed in range(5):
        masked, labels = encoder_mask(
            ids,
            ordinary,
            continuation,
            ratio=0.3,
            mask_id=dupmae.mask_id,
            replacement_ids=dupmae.replacement_ids,
            generator=torch.Generator().manual_seed(seed),
        )
        for row in range(ids.shape[0]):
            positions = ordinary[row].nonzero().flatten().tolist()
            chosen = (labels[row] != IGNORE_INDEX).nonzero().flatten().tolist()
            target = max(1, round_half_up(0.3 * len(positions)))
            assert len(chosen) <= target and set(chosen) <= set(positions)
            words = word_spans(positions, continuation[row, positions].tolist())
            for word in words:  # a word is masked whole or not at all
                assert all(p in chosen for p in word) or not any(p in chosen for p in word)
            assert torch.equal(labels[row, chosen], ids[row, chosen])
            # never a special or padding position, and unchosen tokens unchanged
            keep = [p for p in range(ids.shape[1]) if p not in chosen]
            assert torch.equal(masked[row, keep], ids[row, keep])


def test_single_piece_words_give_exactly_round_ratio_n():
    ids = torch.arange(10, 30)[None]
    ordinary = torch.ones_like(ids, dtype=torch.bool)
    continuation = torch.zeros_like(ordinary)
    for ratio, expected in ((0.3, 6), (0.15, 3), (0.5, 10), (0.01, 1)):
        _, labels = encoder_mask(
            ids,
            ordinary,
            continuation,
            ratio=ratio,
            mask_id=4,
            replacement_ids=torch.arange(5, 40),
            generator=torch.Generator().manual_seed(1),
        )
        assert int((labels != IGNORE_INDEX).sum()) == expected


def test_bert_replacement_shares_are_80_10_10():
    ids = torch.arange(10, 4010)[None]
    ordinary = torch.ones_like(ids, dtype=torch.bool)
    masked, labels = encoder_mask(
        ids,
        ordinary,
        torch.zeros_like(ordinary),
        ratio=1.0,
        mask_id=4,
        replacement_ids=torch.arange(5, 9000),
        generator=torch.Generator().manual_seed(0),
    )
    n = ids.numel()
    assert int((labels != IGNORE_INDEX).sum()) == n
    share_mask = float((masked == 4).float().mean())
    share_kept = float((masked == ids).float().mean())
    assert abs(share_mask - 0.8) < 0.03 and abs(share_kept - 0.1) < 0.02  # random ones may equal the token


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    ratio=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_decoder_rows_see_cls_never_themselves_and_hide_exactly_round_ratio(lengths, ratio, seed):
    width = max(lengths)
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    visible = decoder_visibility(mask, ratio=ratio, generator=torch.Generator().manual_seed(seed))
    assert visible.shape == (len(lengths), width, width) and visible.dtype == torch.bool
    for b, n in enumerate(lengths):
        for i in range(width):
            assert visible[b, i, 0]  # the sentence embedding, always
            candidates = [j for j in range(1, n) if j != i]
            seen = [j for j in range(1, width) if visible[b, i, j]]
            assert set(seen) <= set(candidates)  # never itself, never padding
            assert len(candidates) - len(seen) == math.floor(ratio * len(candidates) + 0.5)


def test_rows_get_their_own_samples():
    mask = torch.ones(1, 40, dtype=torch.long)
    visible = decoder_visibility(mask, ratio=0.5, generator=torch.Generator().manual_seed(0))
    patterns = {tuple(visible[0, i, 1:].tolist()) for i in range(1, 40)}
    assert len(patterns) > 30


@pytest.mark.parametrize("seed", [0, 1])
def test_same_seed_same_masks(dupmae, batch, seed):
    a = dupmae(batch["input_ids"], batch["attention_mask"], generator=torch.Generator().manual_seed(seed))
    b = dupmae(batch["input_ids"], batch["attention_mask"], generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a.encoder_labels, b.encoder_labels) and torch.equal(a.logits, b.logits)
