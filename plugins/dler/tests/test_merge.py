"""Update-selective merging: keep = 1 is θ_DLER and keep = 0 is θ_base exactly (invariant 5),
the kept entries are the largest |Δ| (brute force), the l1 rescale keeps the update mass, and the
recipe merges a trained model into its base through the core runner."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_dler.merge import UpdateSelectiveMerge, update_selective_merge

import tokensmith
from tokensmith import ConfigError, InputError
from tokensmith.testing import TINY_CORPUS, tiny_llama


def _states(seed, shapes=((4, 3), (7,), (2, 2, 2))):
    g = torch.Generator().manual_seed(seed)
    base = {f"w{i}": torch.randn(s, generator=g) for i, s in enumerate(shapes)}
    tuned = {k: v + torch.randn(v.shape, generator=g) * 0.1 for k, v in base.items()}
    base["steps"], tuned["steps"] = torch.tensor(0), torch.tensor(3)
    return base, tuned


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), keep=st.floats(0, 1), rescale=st.sampled_from(["none", "l1"]))
def test_keep_selects_the_largest_updates(seed, keep, rescale):
    base, tuned = _states(seed)
    merged = update_selective_merge(base, tuned, keep, rescale)
    assert torch.equal(merged["steps"], tuned["steps"])
    for name in ("w0", "w1", "w2"):
        delta = (tuned[name] - base[name]).reshape(-1)
        k = round(keep * delta.numel())
        changed = (merged[name] != base[name]).reshape(-1)
        assert int(changed.sum()) == k
        if 0 < k < delta.numel():
            assert delta.abs()[changed].min() >= delta.abs()[~changed].max()
        if rescale == "l1" and k:
            kept = (merged[name] - base[name]).reshape(-1)
            assert kept.abs().sum() == pytest.approx(float(delta.abs().sum()), rel=1e-4)


@pytest.mark.parametrize("rescale", ["none", "l1"])
def test_keep_one_is_the_tuned_model_and_keep_zero_the_base(rescale):
    base, tuned = _states(0)
    one = update_selective_merge(base, tuned, 1.0, rescale)
    zero = update_selective_merge(base, tuned, 0.0, rescale)
    assert all(torch.equal(one[k], tuned[k]) for k in tuned)
    assert all(torch.equal(zero[k], base[k]) for k in base if k != "steps")


def test_merge_errors():
    base, tuned = _states(0)
    with pytest.raises(ConfigError, match="keep"):
        update_selective_merge(base, tuned, 1.5)
    with pytest.raises(InputError, match="different tensors"):
        update_selective_merge(base, {"w0": tuned["w0"]}, 0.5)
    with pytest.raises(InputError, match="w1"):
        update_selective_merge(base, {**tuned, "w1": torch.zeros(3)}, 0.5)
    with pytest.raises(ConfigError):
        UpdateSelectiveMerge(keep=-0.1)


@pytest.mark.parametrize("keep", [0.0, 1.0])
def test_the_recipe_merges_a_trained_model_into_its_base(tiny_tokenizer, tmp_path, keep):
    model, _ = tiny_llama(tiny_tokenizer, hidden_size=16, layers=1)
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    examples = [{"text": s} for s in TINY_CORPUS.split(". ")]
    recorded = []

    class Spy(tokensmith.Recipe):
        name = "spy"

        def callbacks(self, ctx):
            from transformers import TrainerCallback

            class Before(TrainerCallback):
                def on_train_end(self, args, state, control, model=None, **kw):
                    recorded.append({k: v.detach().clone() for k, v in model.state_dict().items()})

            return [Before()]

    merge = tokensmith.default_registry().build("recipe", {"type": "dler-merge", "keep": keep})

    class Both(tokensmith.Recipe):
        name = "spy+merge"

        def callbacks(self, ctx):
            return Spy().callbacks(ctx) + merge.callbacks(ctx)

    result = tokensmith.run_recipe(
        model=model,
        tokenizer=tiny_tokenizer,
        train_data=examples,
        data={"max_length": 32, "packing": True},
        recipe=Both(),
        arguments={"steps": 2, "batch_size": 2, "lr": 1e-2, "progress": "off", "save_final": False},
        output_dir=str(tmp_path),
    )
    trained, final = recorded[0], result.model.state_dict()
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    expected = trained if keep == 1.0 else base
    assert all(torch.equal(final[k], expected[k]) for k in base)


def _mergekit_yaml():
    """mergekit's CLI, from $TOKENSMITH_MERGEKIT_YAML or PATH: mergekit is not a dependency of
    tokensmith (nor installed in CI's envs), so it runs as a separate program from its own venv,
    opted into by naming it (a mergekit run costs minutes of CPU, beyond a plugin's test budget)."""
    import os
    import shutil
    from pathlib import Path

    for candidate in (
        os.environ.get("TOKENSMITH_MERGEKIT_YAML"),
        shutil.which("mergekit-yaml"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.mark.skipif(
    _mergekit_yaml() is None,
    reason="mergekit is not installed here (opt in: pip install mergekit==0.1.5 in a venv of its own "
    "and set TOKENSMITH_MERGEKIT_YAML to its bin/mergekit-yaml)",
)
def test_one_model_ties_merge_is_mergekits(tiny_tokenizer, tmp_path):
    """Where the rules coincide: mergekit's ``ties`` with one model (weight 1, normalised) keeps
    the ``density`` share of the task vector with the largest magnitude per tensor — the sign
    election and the disjoint mean are the identity for one model — and adds it to the base,
    which is our update-selective merge with keep = density and no rescale (every tensor here has
    an even size, so mergekit's floor(density·n) and our round(keep·n) agree)."""
    import subprocess

    from safetensors.torch import load_file

    base, _ = tiny_llama(tiny_tokenizer, seed=0)
    tuned, _ = tiny_llama(tiny_tokenizer, seed=0)
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    base.save_pretrained(tmp_path / "base", safe_serialization=True)
    tuned.save_pretrained(tmp_path / "tuned", safe_serialization=True)
    (tmp_path / "ties.yml").write_text(
        f"merge_method: ties\nbase_model: {tmp_path / 'base'}\ndtype: float32\n"
        f"parameters:\n  normalize: true\n"
        f"models:\n  - model: {tmp_path / 'tuned'}\n    parameters:\n      density: 0.5\n      weight: 1.0\n"
    )
    run = subprocess.run(
        [_mergekit_yaml(), str(tmp_path / "ties.yml"), str(tmp_path / "merged")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = {}
    for f in sorted((tmp_path / "merged").glob("*.safetensors")):
        theirs.update(load_file(f))
    ours = update_selective_merge(base.state_dict(), tuned.state_dict(), keep=0.5)
    # every parameter (tied embeddings counted once) is in mergekit's output, and equal to ours
    assert set(dict(base.named_parameters())) <= set(theirs)
    for name, tensor in theirs.items():
        assert tensor.numel() % 2 == 0
        assert torch.allclose(tensor.float(), ours[name].float(), atol=1e-6, rtol=0), name
    # and the merge is neither side: half of each tensor's update was dropped
    embed = "model.embed_tokens.weight"
    assert not torch.equal(theirs[embed], tuned.state_dict()[embed])
    assert not torch.equal(theirs[embed], base.state_dict()[embed])
