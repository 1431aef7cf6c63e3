"""The gradient-enabled LanguageModel path: completions scored with autograd (RL recipes,
preference objectives) agree with the inference path and carry gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import ContextLengthError, IncompatibleComponentsError, InputError


def _brute_force(model, prompt, completion):
    """log p(completion | prompt) token by token: one unpadded forward per prefix."""
    out = []
    for i, token in enumerate(completion):
        ids = torch.tensor([list(prompt) + list(completion[:i])])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -1]
        out.append(float(torch.log_softmax(logits.float(), -1)[token]))
    return out


def test_values_equal_the_inference_path_and_a_brute_force_reference(tiny_lm):
    tok = tiny_lm.tokenizer
    start = list(tiny_lm.start_ids)
    prompts = [start + list(tok.encode("The capital of").ids), start + list(tok.encode("def f(").ids), start]
    completions = [list(tok.encode(text).ids) for text in (" France is Paris", "n):", "A")]
    with_grad = tiny_lm.sequence_logprobs(prompts, completions)
    without = tiny_lm.sequence_logprobs(prompts, completions, grad=False)
    for g, n, p, c in zip(with_grad, without, prompts, completions, strict=True):
        assert g.shape == (len(c),) and g.requires_grad and not n.requires_grad
        assert torch.equal(g.detach(), n)
        assert torch.allclose(g.detach(), torch.tensor(_brute_force(tiny_lm.model, p, c)), atol=1e-5)


def test_gradients_reach_every_parameter_that_shapes_the_completion(tiny_lm):
    tok = tiny_lm.tokenizer
    prompts = [list(tiny_lm.start_ids) + list(tok.encode("The quick").ids)]
    completions = [list(tok.encode(" brown fox").ids)]
    tiny_lm.model.zero_grad(set_to_none=True)
    (-tiny_lm.sequence_logprobs(prompts, completions)[0].sum()).backward()
    grads = {n: p.grad for n, p in tiny_lm.model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values()), \
        [n for n, g in grads.items() if g is None]
    assert all(float(g.abs().sum()) > 0 for n, g in grads.items() if "layers" in n)
    tiny_lm.model.zero_grad(set_to_none=True)


def test_a_gradient_step_raises_the_completion_likelihood(tiny_lm):
    tok = tiny_lm.tokenizer
    prompts = [list(tiny_lm.start_ids) + list(tok.encode("Byte pair").ids)]
    completions = [list(tok.encode(" encoding merges").ids)]
    before = float(tiny_lm.sequence_logprobs(prompts, completions, grad=False)[0].sum())
    optimizer = torch.optim.SGD(tiny_lm.model.parameters(), lr=0.05)
    (-tiny_lm.sequence_logprobs(prompts, completions)[0].sum()).backward()
    optimizer.step()
    assert float(tiny_lm.sequence_logprobs(prompts, completions, grad=False)[0].sum()) > before


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.lists(st.integers(0, 319), min_size=1, max_size=6),
                          st.lists(st.integers(0, 319), max_size=5)), min_size=1, max_size=4))
def test_padding_never_changes_a_pair_s_values(tiny_lm, pairs):
    """Each pair scored in a padded batch equals the pair scored alone."""
    prompts, completions = [p for p, _ in pairs], [c for _, c in pairs]
    batch = tiny_lm.sequence_logprobs(prompts, completions)
    for row, p, c in zip(batch, prompts, completions, strict=True):
        alone = tiny_lm.sequence_logprobs([p], [c])[0]
        assert row.shape == (len(c),)
        assert torch.allclose(row.detach(), alone.detach(), atol=1e-5)


def test_logits_with_grad_matches_the_model_and_checks_its_input(tiny_lm):
    ids = torch.tensor([[1, 5, 9, 3], [2, 2, 7, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    logits = tiny_lm.logits_with_grad(ids, mask)
    assert logits.requires_grad and logits.shape == (2, 4, tiny_lm.vocab_size)
    with torch.no_grad():
        assert torch.equal(logits.detach(), tiny_lm.model(input_ids=ids, attention_mask=mask).logits)
    assert torch.equal(tiny_lm.logits_with_grad([[1, 5, 9, 3]]).detach(), logits[:1].detach())
    for bad in (torch.tensor([1, 2, 3]), torch.tensor([[0.5, 1.0]]), [[1, 2], [3]], "abc", [[1, True]],
                torch.tensor([[1, 10_000]]), torch.tensor([[-1, 2]]), torch.zeros((0, 3), dtype=torch.long)):
        with pytest.raises(InputError):
            tiny_lm.logits_with_grad(bad)
    with pytest.raises(InputError, match="attention_mask"):
        tiny_lm.logits_with_grad(ids, mask[:, :2])
    with pytest.raises(ContextLengthError):
        tiny_lm.logits_with_grad(torch.ones((1, tiny_lm.context_length + 1), dtype=torch.long))


def test_sequence_logprobs_refuses_what_it_cannot_score(tiny_lm):
    with pytest.raises(InputError, match="empty"):
        tiny_lm.sequence_logprobs([[]], [[5]])
    with pytest.raises(InputError, match="2 prompts but 1"):
        tiny_lm.sequence_logprobs([[1], [2]], [[3]])
    with pytest.raises(InputError):
        tiny_lm.sequence_logprobs("hello", [[3]])
    with pytest.raises(InputError):
        tiny_lm.sequence_logprobs([[1]], [[tiny_lm.vocab_size]])
    with pytest.raises(ContextLengthError):
        tiny_lm.sequence_logprobs([[1] * tiny_lm.context_length], [[2]])
    assert tiny_lm.sequence_logprobs([], []) == []
    assert tiny_lm.sequence_logprobs([[1, 2]], [[]])[0].shape == (0,)


def test_a_language_model_without_a_gradient_path_says_so(tiny_lm):
    from tokensmith import LanguageModel

    class NoGrad(LanguageModel):
        tokenizer = tiny_lm.tokenizer
        context_length = 16
        vocab_size = tiny_lm.vocab_size
        start = extend = fork = None

        def logprobs_batch(self, sequences):
            return tiny_lm.logprobs_batch(sequences)

    lm = NoGrad()
    with pytest.raises(IncompatibleComponentsError, match="gradient"):
        lm.sequence_logprobs([[1, 2]], [[3]])
    assert lm.sequence_logprobs([[1, 2]], [[3]], grad=False)[0].shape == (1,)
