"""The TransNormer LM: its three attention forms agree end to end, the recurrent state is
constant in the sequence length (invariant 3), LRPE is relative, and the architecture
component builds a seeded model from a validated config."""

from __future__ import annotations

import attrs
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokensmith_transnormer import TransNormerConfig
from tokensmith_transnormer.lightning_attention import decay_rates
from tokensmith_transnormer.model import LRPE, TransNormerArchitecture, TransNormerLM

from tokensmith import BuildContext, ConfigError, Runtime


def _rel(a, b):
    return float((a - b).abs().max()) / float(b.abs().max())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), block=st.integers(1, 48), lrpe=st.booleans(),
       decay=st.sampled_from(["alibi", "paper"]), seed=st.integers(0, 1000))
def test_forms_agree_end_to_end(tnl_model, n, block, lrpe, decay, seed):
    model = tnl_model(block_size=block, lrpe=lrpe, decay=decay)
    ids = torch.randint(0, 64, (2, n), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ref, ref_state = model(ids, form="parallel")
        for form in ("blockwise", "recurrent"):
            logits, state = model(ids, form=form)
            assert _rel(logits, ref) < 1e-6
            assert state.offset == n
            assert all(_rel(a, b) < 1e-6 for a, b in zip(state.kv, ref_state.kv, strict=True))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 40), data=st.data())
def test_reading_in_pieces_equals_reading_at_once(tnl_model, n, data):
    model = tnl_model(lrpe=True)
    cut = data.draw(st.integers(1, n - 1))
    ids = torch.randint(0, 64, (1, n), generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        ref, _ = model(ids)
        head, state = model(ids[:, :cut], form="blockwise")
        tail, _ = model(ids[:, cut:], form="recurrent", state=state)
    assert _rel(torch.cat([head, tail], dim=1), ref) < 1e-6


def test_causal(tnl_model):
    model = tnl_model()
    ids = torch.randint(0, 64, (1, 30), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, 20:] = (changed[0, 20:] + 1) % 64
    with torch.no_grad():
        a, _ = model(ids)
        b, _ = model(changed)
    assert torch.equal(a[:, :20], b[:, :20]) and not torch.equal(a[:, 20:], b[:, 20:])


@pytest.mark.parametrize("lrpe", [False, True])
def test_recurrent_state_size_is_constant(tnl_model, lrpe):
    model = tnl_model(lrpe=lrpe)
    cfg = model.config
    d = cfg.head_dim
    sizes, shapes = [], []
    with torch.no_grad():
        state = model.empty_state()
        for n in (1, 10, 100, 1000):
            _, state = model(torch.zeros(1, n, dtype=torch.long), form="blockwise", state=state)
            _, state = model(torch.zeros(1, 1, dtype=torch.long), form="recurrent", state=state)
            sizes.append(state.nbytes)
            shapes.append([tuple(t.shape) for t in state.kv])
    dk = 2 * d if lrpe else d
    assert state.offset == 1 + 10 + 100 + 1000 + 4
    assert shapes == [[(1, cfg.heads, dk, d)] * cfg.layers] * 4
    assert len(set(sizes)) == 1 and sizes[0] == cfg.layers * cfg.heads * dk * d * 8


def test_model_decay_buffers_follow_the_formula(tnl_model):
    for form in ("alibi", "paper"):
        model = tnl_model(decay=form, layers=4)
        for layer, block in enumerate(model.blocks):
            assert block.attn.decay.tolist() == decay_rates(4, layer, 4, form)


def test_bf16_model_keeps_decay_and_positions_precise(tnl_model):
    """bf16 rounds λ = 0.9987 (8 heads, layer 2 of 4) to 1.0, and positions past 256 to even
    numbers: λ and the LRPE angles must stay float32 so the bf16 model follows the float64 one."""
    import copy

    reference = tnl_model(heads=8, layers=4, lrpe=True)
    with torch.no_grad():
        for p in reference.parameters():
            p.div_(10.0)    # the fixture's ×10 weights make bf16 rounding itself the dominant error
    low = copy.deepcopy(reference).to(torch.bfloat16)
    for layer, (a, b) in enumerate(zip(low.blocks, reference.blocks, strict=True)):
        rates = decay_rates(8, layer, 4, "alibi")
        assert a.attn.decay.dtype == torch.float32 and b.attn.decay.dtype == torch.float64
        assert a.attn.decay.tolist() == torch.tensor(rates, dtype=torch.float32).tolist()
        if layer < 3:
            assert (a.attn.decay < 1).all()
    assert low.float().blocks[0].attn.decay.tolist() == torch.tensor(
        decay_rates(8, 0, 4, "alibi"), dtype=torch.float32).tolist()
    low = copy.deepcopy(reference).to(torch.bfloat16)
    ids = torch.randint(0, 64, (1, 600), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, _ = reference(ids)
        for form in ("blockwise", "recurrent"):
            logits, state = low(ids, form=form)
            assert logits.dtype == torch.bfloat16 and state.kv[0].dtype == torch.float32
            assert _rel(logits.double(), ref) < 0.02


def test_lrpe_scores_depend_on_relative_position_only():
    lrpe = LRPE(heads=2, head_dim=6).double()
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 1, 6, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, 1, 6, generator=g, dtype=torch.float64)
    scores = [(lrpe(q, n + 7) * lrpe(k, n)).sum(-1) for n in (0, 5, 123)]
    assert torch.allclose(scores[0], scores[1]) and torch.allclose(scores[0], scores[2])
    assert not torch.allclose(scores[0], (lrpe(q, 8) * lrpe(k, 0)).sum(-1))
    assert lrpe(q, 0).shape[-1] == 12


def test_lrpe_only_on_listed_layers(tnl_model):
    model = tnl_model(lrpe=True, lrpe_layers=[1])
    assert [b.attn.lrpe is not None for b in model.blocks] == [False, True, False]


def test_srmsnorm_everywhere_and_no_norm_gains(tnl_model):
    model = tnl_model()
    names = {type(m).__name__ for m in model.modules()}
    assert "SRMSNorm" in names and not names & {"LayerNorm", "RMSNorm"}
    assert model.head.weight is model.embed.weight


def test_learns_a_repeated_sequence(tnl_config):
    torch.manual_seed(0)
    model = TransNormerLM(tnl_config(block_size=4, lrpe=True))
    ids = torch.arange(32).repeat(1, 2) % 64
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        logits, _ = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits[0], ids[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_architecture_component(make_registry, runtime, tiny_tokenizer):
    from tokensmith_transnormer import plugin

    registry = make_registry(plugin)
    arch = registry.build("architecture", {"type": "transnormer-lm", "width": 16, "heads": 2, "layers": 2,
                                           "block_size": 4, "lrpe": True, "lrpe_layers": [1]},
                          BuildContext(runtime=runtime, tokenizer=tiny_tokenizer))
    assert isinstance(arch, TransNormerArchitecture) and arch.lrpe_layers == (1,)
    a, b = arch.build(runtime), arch.build(runtime)
    assert isinstance(a, TransNormerLM) and a.config.vocab_size == tiny_tokenizer.vocab_size
    assert type(a.config) is TransNormerConfig and a.config.width == 16 and a.config.uses_lrpe(1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    other = arch.build(Runtime(seed=1, dtype="float64"))
    assert next(other.parameters()).dtype == torch.float64
    assert not torch.equal(other.embed.weight.float(), a.embed.weight)
    with pytest.raises(ConfigError, match="vocab_size"):
        registry.build("architecture", "transnormer-lm", BuildContext(runtime=runtime)).build(runtime)


def test_architecture_parameters_are_the_config_fields(make_registry):
    """Declared once: the registry sees exactly TransNormerConfig's fields, with their
    types and defaults (the build context is not a parameter)."""
    from tokensmith_transnormer import plugin

    registry = make_registry(plugin)
    signature = registry.parameters(registry.get("architecture", "transnormer-lm"))
    fields = attrs.fields(TransNormerConfig)
    assert [p.name for p in signature.parameters] == [f.name for f in fields]
    assert [p.default for p in signature.parameters] == [f.default for f in fields]
    assert signature.wants_context


@pytest.mark.parametrize("bad, names", [
    ({"width": 10, "heads": 4}, "divisible"),
    ({"lrpe_layers": [0]}, "lrpe"),
    ({"lrpe": True, "lrpe_layers": [5]}, "lrpe_layers"),
    ({"decay": "linear"}, "decay"),
    ({"block_size": 0}, "block_size"),
    ({"layers": True}, "layers"),
    ({"eps": "small"}, "eps"),
    ({"lrpe": "yes"}, "lrpe"),
    ({"widht": 8}, "width"),
])
def test_bad_architecture_parameters_are_config_errors(make_registry, runtime, bad, names):
    from tokensmith_transnormer import plugin

    with pytest.raises(ConfigError, match=names) as info:
        make_registry(plugin).build("architecture", {"type": "transnormer-lm", **bad},
                                    BuildContext(runtime=runtime))
    assert "transnormer-lm" in str(info.value)


def test_unknown_form_is_an_error(tnl_model):
    with pytest.raises(ConfigError, match="form"):
        tnl_model()(torch.zeros(1, 2, dtype=torch.long), form="chunked")
