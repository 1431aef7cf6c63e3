"""The dupmae loss: BoW targets, the BoW loss by brute force, no leakage into the decoder,
λ_bow = 0 is RetroMAE, the OT pooling, the aggregated representation, typed errors."""

from __future__ import annotations

import math
import types

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dupmae import DupMAELoss, bow_loss, bow_targets, dupmae_terms
from tokensmith_dupmae.model import aggregate, ot_max_pool, sparsify

from tokensmith import ContextLengthError, IncompatibleComponentsError, InputError


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=10), min_size=1, max_size=4))
def test_bow_targets_are_the_inputs_bag_of_words_brute_force(rows):
    special = {0, 1}  # ids 0 and 1 play [PAD]/[CLS]
    width = max(map(len, rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    ordinary = torch.tensor([[t not in special for t in r] + [False] * (width - len(r)) for r in rows])
    targets = bow_targets(ids, ordinary, 10)
    for b, r in enumerate(rows):
        tokens = [t for t in r if t not in special]
        expected = [1 / len(set(tokens)) if v in tokens else 0.0 for v in range(10)] if tokens else [0.0] * 10
        assert targets[b].tolist() == pytest.approx(expected)
        # a distribution over the row's distinct ordinary tokens (all 0 when it has none)
        assert float(targets[b].sum()) == pytest.approx(1.0 if tokens else 0.0)
        assert bool((targets[b] >= 0).all())
        assert all(targets[b, s] == 0 for s in special)


def test_bow_loss_equals_the_formula_by_hand():
    torch.manual_seed(0)
    z = torch.randn(3, 10)
    ids = torch.tensor([[2, 3, 3, 4], [5, 5, 5, 0], [6, 7, 8, 9]])
    ordinary = ids != 0
    targets = bow_targets(ids, ordinary, 10)
    by_hand = 0.0
    for b in range(3):
        tokens = [int(t) for t, o in zip(ids[b], ordinary[b]) if o]
        denominator = sum(math.exp(float(x)) for x in z[b])
        distinct = set(tokens)
        by_hand += -sum((1 / len(distinct)) * (float(z[b, v]) - math.log(denominator)) for v in distinct)
    assert float(bow_loss(z, targets)) == pytest.approx(by_hand / 3, rel=1e-5)


def test_ot_max_pool_is_permutation_invariant_and_ignores_cls_and_padding():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 7)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    pooled = ot_max_pool(logits, mask)
    assert torch.equal(pooled[0], logits[0, 1:4].max(0).values)
    perm = torch.tensor([0, 3, 1, 2, 4, 5])
    assert torch.equal(ot_max_pool(logits[:, perm], mask), pooled)
    changed = logits.clone()
    changed[0, 0] += 100  # [CLS] and padding do not count
    changed[0, 4:] += 100
    assert torch.equal(ot_max_pool(changed, mask)[0], pooled[0])


def test_the_loss_is_the_sum_of_its_terms_and_bow_weight_zero_is_retromae(dupmae, batch):
    out = dupmae(batch["input_ids"], batch["attention_mask"], generator=torch.Generator().manual_seed(0))
    terms = dupmae_terms(out, 0.1)
    total = DupMAELoss()(batch, out).detach()
    assert float(total) == pytest.approx(float((terms["cls"] + 0.1 * terms["bow"] + terms["enc"]).detach()))
    assert torch.equal(DupMAELoss(bow_weight=0.0)(batch, out), terms["cls"] + terms["enc"])
    dupmae.zero_grad()
    DupMAELoss(bow_weight=0.0)(batch, out).backward(retain_graph=True)
    retro = {n: p.grad.clone() for n, p in dupmae.named_parameters() if p.grad is not None}
    dupmae.zero_grad()
    (terms["cls"] + terms["enc"]).backward()
    assert all(torch.equal(retro[n], p.grad) for n, p in dupmae.named_parameters() if n in retro)


def test_decoder_sees_only_cls_and_the_embedded_input(dupmae, batch):
    """Perturbing the encoder's last-layer states at every position but [CLS] changes the encoder
    loss and the OT pooling, never the decoder's loss."""

    def run(perturb):
        def hook(module, args, output):
            if perturb:
                noisy = output.last_hidden_state.clone()
                noisy[:, 1:] += 5 * torch.randn_like(noisy[:, 1:])
                output.last_hidden_state = noisy
            return output

        handle = dupmae.mlm.bert.register_forward_hook(hook)
        try:
            out = dupmae(
                batch["input_ids"], batch["attention_mask"], generator=torch.Generator().manual_seed(3)
            )
        finally:
            handle.remove()
        return dupmae_terms(out, 0.1)

    plain, perturbed = run(False), run(True)
    assert torch.allclose(plain["cls"], perturbed["cls"], atol=1e-6)
    assert not torch.allclose(plain["enc"], perturbed["enc"])
    assert not torch.allclose(plain["bow"], perturbed["bow"])


def test_decoder_row_output_ignores_hidden_context(dupmae, batch):
    """Changing the token at a position a row does not see leaves that row's decoder output as it is."""
    ids, mask = dupmae.wrap(batch["input_ids"][:1], batch["attention_mask"][:1])
    dupmae.eval()
    h_c = torch.randn(1, 1, dupmae.config.hidden_size)
    from tokensmith_dupmae.masking import decoder_visibility

    visible = decoder_visibility(mask, ratio=0.5, generator=torch.Generator().manual_seed(0))
    base = dupmae.decode(h_c, ids, visible)
    row = 3
    hidden_j = next(j for j in range(1, int(mask.sum())) if not visible[0, row, j])
    changed = ids.clone()
    changed[0, hidden_j] = (changed[0, hidden_j] + 1) % 50 + 5
    after = dupmae.decode(h_c, changed, visible)
    assert torch.allclose(base[0, row], after[0, row], atol=1e-6)
    seen_j = next(j for j in range(1, int(mask.sum())) if visible[0, row, j])
    changed = ids.clone()
    changed[0, seen_j] = (changed[0, seen_j] + 1) % 50 + 5
    assert not torch.allclose(base[0, row], dupmae.decode(h_c, changed, visible)[0, row])


def test_aggregated_representation_is_unit_norm_cls_plus_sparse_ot(dupmae, batch):
    reps = dupmae.representations(batch["input_ids"], batch["attention_mask"], top_k=5)
    hidden, vocab = dupmae.config.hidden_size, dupmae.config.vocab_size
    assert reps["aggregated"].shape == (4, hidden + vocab)
    assert torch.allclose(reps["aggregated"].norm(dim=-1), torch.ones(4), atol=1e-5)
    assert bool(((reps["ot"] != 0).sum(-1) <= 5).all()) and bool((reps["ot"] >= 0).all())
    a, b = reps["aggregated"][0], reps["aggregated"][1]
    cos = torch.nn.functional.cosine_similarity
    expected = (cos(reps["cls"][0], reps["cls"][1], dim=0) + cos(reps["ot"][0], reps["ot"][1], dim=0)) / 2
    assert float(a @ b) == pytest.approx(float(expected), abs=1e-5)
    assert torch.equal(sparsify(torch.tensor([[3.0, 1.0, 2.0]]), 2), torch.tensor([[3.0, 0.0, 2.0]]))
    assert aggregate(torch.ones(1, 2), torch.ones(1, 3)).shape == (1, 5)


def test_bad_input_is_a_typed_error_naming_the_model(dupmae, batch, wordpiece):
    ids = batch["input_ids"]
    with pytest.raises(InputError, match="dupmae.*special"):
        dupmae(torch.cat([torch.full((4, 1), dupmae.cls_id), ids], 1))
    with pytest.raises(InputError, match="no token"):
        dupmae(ids, torch.zeros_like(ids))
    with pytest.raises(InputError, match="integer tensor"):
        dupmae(ids.float())
    with pytest.raises(ContextLengthError, match="positions"):
        dupmae(torch.full((1, 63), 10))
    with pytest.raises(InputError, match="right-padded"):
        dupmae(ids, batch["attention_mask"].flip(1))
    with pytest.raises(IncompatibleComponentsError, match="recipe"):
        DupMAELoss()(batch, types.SimpleNamespace(logits=torch.randn(4, 3, 7)))
    from tokensmith_dupmae.model import dupmae_model, encode_texts

    with pytest.raises(IncompatibleComponentsError, match="BERT"):
        dupmae_model(torch.nn.Linear(2, 2), wordpiece)
    with pytest.raises(InputError, match="no tokens"):
        encode_texts(wordpiece, ["fox", "   "], "benchmark 'dupmae-retrieval'")
