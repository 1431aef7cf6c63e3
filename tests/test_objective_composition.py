"""Objectives compose across plugins: ssToken's selection mask inside a PRIOR-weighted loss,
from one recipe file, equals the loss computed by hand on a fixed batch (issue 12)."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.cross_plugin

RECIPE = """
[model]
source = "tiny-llama"
hidden_size = 16
layers = 1

[dataset]
type = "text-files"

[[objective]]
type = "sstoken"
ratio = 0.5
gamma = 0.5

[[objective]]
type = "prior"
alpha = 1.0
reference = { source = "tiny-llama", hidden_size = 16, layers = 2 }

[recipe]
type = "sstoken"

[train]
steps = 1
"""


def test_sstoken_inside_prior_equals_the_hand_computed_loss(tmp_path):
    pytest.importorskip("tokensmith_sstoken")
    pytest.importorskip("tokensmith_prior")
    torch = pytest.importorskip("torch")
    import tokensmith

    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    spec = tokensmith.RecipeSpec.from_toml(path)
    registry = tokensmith.default_registry()
    runtime = tokensmith.Runtime()
    model, tokenizer = registry.load_model(spec.model, runtime)
    ctx = tokensmith.BuildContext(runtime=runtime, model=model, tokenizer=tokenizer, registry=registry)
    objectives = [registry.build("objective", ref, ctx) for ref in spec.objectives]
    model = registry.build("recipe", spec.recipe, ctx).prepare(model, ctx)
    loss = tokensmith.compose(objectives)
    # training moves θ away from θ_his (a frozen copy of the loaded model): REL is then not ~0
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn(parameter.shape, generator=generator))
    mask, weights = objectives

    prompt, response = "Q: what digit is this? A:", " it is the digit seven, 7."
    p_ids, r_ids = tokenizer.encode(prompt).ids, tokenizer.encode(response).ids
    ids = torch.tensor([p_ids + r_ids, (p_ids + r_ids)[::-1]])
    labels = ids.clone()
    labels[:, :len(p_ids)] = tokensmith.IGNORE_INDEX
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    outputs = model(input_ids=ids, use_cache=False)
    got = float(loss(batch, outputs).detach())

    # by hand: per-token losses of the model, the history (frozen base) and the reference
    def logp(logits, r, t):
        return float(torch.log_softmax(logits[r, t - 1].double(), -1)[ids[r, t]])

    with torch.no_grad():
        his = mask.history(input_ids=ids).logits
        ref = weights.model(input_ids=ids).logits
    attn = outputs.attentions[-1].detach().mean(1)
    total, kept_count = 0.0, 0
    for r in range(2):
        resp = list(range(len(p_ids), ids.shape[1]))
        rel = {t: logp(outputs.logits.detach(), r, t) - logp(his, r, t) for t in resp}
        lo, hi = min(rel.values()), max(rel.values())
        score = {t: 0.5 * (rel[t] - lo) / (hi - lo + 1e-8) + 0.5 * float(attn[r, t - 1, :len(p_ids)].sum())
                 for t in resp}
        kept = sorted(resp, key=lambda t: (-score[t], t))[:math.ceil(0.5 * len(resp))]
        raw = {t: 1 - math.exp(logp(ref, r, t)) for t in resp}
        w = {t: len(resp) * raw[t] / sum(raw.values()) for t in resp}  # mean 1 over the caption
        total += sum(-w[t] * logp(outputs.logits.detach(), r, t) for t in kept)
        kept_count += len(kept)
    assert got == pytest.approx(total / kept_count, rel=1e-4)
