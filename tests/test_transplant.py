"""Embedding transplant (adapters/embeddings.py) and the model's own tokenizer in BuildContext."""

from __future__ import annotations

import types

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith import (
    ByteViewError,
    Component,
    ConfigError,
    EmbeddingProvider,
    Encoding,
    HFCausalLM,
    IncompatibleComponentsError,
    PipelineSpec,
    SurgeryError,
    Tokenizer,
    hookimpl,
    tiny_tokenizer,
)
from tokensmith.adapters.embeddings import (
    check_vocabulary,
    install_embeddings,
    map_shared_tokens,
    mask_padding_rows,
)
from tokensmith.adapters.models import tiny_gpt2, tiny_llama

TEXTS = ["The quick brown fox jumps over the lazy dog.", "def fibonacci(n):\n    return n",
         "Naïve café, 東京 and Москва."]
OTHER_CORPUS = ["Some other text entirely, so the merges come in another order: zebra zebra "
                "quartz quartz jukebox. 0123456789 ünïcödé"] * 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def other_tokenizer():
    """Byte-level like the tiny models' tokenizer, but trained on other text: shared tokens
    sit at other ids."""
    return tiny_tokenizer("byte_level", vocab_size=300, corpus=OTHER_CORPUS)


def untied_llama(tokenizer, *, extra_rows: int = 0, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=tokenizer.vocab_size + extra_rows, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def padded_llama(tokenizer, extra_rows: int = 13):
    """A tied Llama whose embedding table is larger than its tokenizer, like many released models."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=tokenizer.vocab_size + extra_rows, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, tie_word_embeddings=True)
    torch.manual_seed(1)
    return LlamaForCausalLM(config).eval()


def models(tokenizer):
    return {"tied-llama": tiny_llama(tokenizer)[0], "gpt2": tiny_gpt2(tokenizer)[0],
            "untied-llama": untied_llama(tokenizer), "padded-llama": padded_llama(tokenizer)}


def logits(model, tokenizer, texts=TEXTS):
    with torch.no_grad():
        return [model(torch.tensor([tokenizer.encode(t).ids])).logits for t in texts]


def tables(model):
    head = model.get_output_embeddings()
    return model.get_input_embeddings().weight.detach().clone(), head.weight.detach().clone()


# -- BuildContext keeps the model's own tokenizer --------------------------------

class Transplant(EmbeddingProvider):
    """An embedding provider as a plugin writes one: rows come from the model's own tokenizer."""

    name = "transplant"

    def __init__(self, ctx):
        self.ctx = ctx

    def build(self, model, tokenizer):
        return model.get_input_embeddings()

    def apply(self, model, tokenizer):
        return install_embeddings(model, tokenizer, old_tokenizer=self.ctx.model_tokenizer)


class SwapPlugin:
    def __init__(self, tokenizer):
        self.tokenizer, self.seen = tokenizer, []

    @hookimpl
    def tokensmith_register_tokenizers(self):
        def make(ctx):
            self.seen.append((ctx.tokenizer, ctx.model_tokenizer))
            return self.tokenizer
        return [Component("swap", make)]

    @hookimpl
    def tokensmith_register_embeddings(self):
        def make(ctx):
            self.seen.append((ctx.tokenizer, ctx.model_tokenizer))
            return Transplant(ctx)
        return [Component("transplant", make)]


def test_a_swapped_tokenizer_leaves_the_model_tokenizer_in_the_build_context(make_registry, other_tokenizer,
                                                                             tiny_tokenizer):
    plugin = SwapPlugin(other_tokenizer)
    pipe = make_registry(plugin).build_pipeline(PipelineSpec(model="tiny-llama", tokenizer="swap",
                                                             embedding="transplant",
                                                             runtime={"device": "cpu"}))
    (at_tokenizer, own), (at_embedding, own_later) = plugin.seen
    assert own is own_later is at_tokenizer  # the model's tokenizer, also while [tokenizer] is built
    assert own.byte_table == tiny_tokenizer.byte_table and own is not other_tokenizer
    assert at_embedding is other_tokenizer  # ctx.tokenizer: the pipeline's tokenizer
    assert pipe.tokenizer is other_tokenizer and pipe.lm.tokenizer is other_tokenizer
    assert pipe.model.get_input_embeddings().weight.shape[0] == other_tokenizer.vocab_size
    assert pipe.lm.vocab_size == other_tokenizer.vocab_size
    (report,) = pipe.reports
    assert report.changes[0].path == "input_embeddings"
    lp = pipe.lm.logprobs_batch([other_tokenizer.encode("The quick brown fox").ids])[0]
    assert torch.isfinite(lp).all()


def test_without_a_tokenizer_slot_both_are_the_model_tokenizer(make_registry, other_tokenizer):
    plugin = SwapPlugin(other_tokenizer)
    make_registry(plugin).build_pipeline(PipelineSpec(model="tiny-gpt2", embedding="transplant",
                                                      runtime={"device": "cpu"}))
    ((tokenizer, own),) = plugin.seen
    assert tokenizer is own and own is not None


# -- the same tokenizer: nothing changes, bit for bit ------------------------------

@pytest.mark.parametrize("name", ["tied-llama", "gpt2", "untied-llama", "padded-llama"])
def test_transplant_onto_the_same_tokenizer_leaves_logits_bit_identical(name, tiny_tokenizer):
    model = models(tiny_tokenizer)[name]
    before, state = logits(model, tiny_tokenizer), {k: v.clone() for k, v in model.state_dict().items()}
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    report = install_embeddings(model, tiny_tokenizer, old_tokenizer=tiny_tokenizer)
    after = logits(model, tiny_tokenizer)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tied
    assert [c.path for c in report.changes] == ["input_embeddings", "output_embeddings"]  # no config change


@pytest.mark.smollm2
def test_transplant_onto_its_own_tokenizer_leaves_smollm2_bit_identical(smollm2):
    model, tokenizer = smollm2  # transplanted in place: every row is copied back to where it was
    ids = torch.tensor([tokenizer.encode("The capital of France is").ids])
    with torch.no_grad():
        before = model(ids).logits
    report = install_embeddings(model, tokenizer, old_tokenizer=tokenizer)
    with torch.no_grad():
        after = model(ids).logits
    assert torch.equal(before, after)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.config.vocab_size == tokenizer.vocab_size == model.get_output_embeddings().weight.shape[0]
    assert [c.path for c in report.changes] == ["input_embeddings", "output_embeddings"]


# -- another tokenizer: shared tokens keep their rows -------------------------------

def _key(tokenizer, i):
    special = tokenizer.special_tokens
    return ("special", special[i]) if i in special else ("bytes", tokenizer.token_bytes(i))


@pytest.mark.parametrize("name", ["tied-llama", "gpt2", "untied-llama", "padded-llama"])
@pytest.mark.parametrize("kind", ["other-byte-level", "byte-fallback"])
def test_shared_tokens_keep_their_exact_rows(name, kind, tiny_tokenizer, other_tokenizer,
                                             tiny_byte_fallback_tokenizer):
    new = other_tokenizer if kind == "other-byte-level" else tiny_byte_fallback_tokenizer
    model = models(tiny_tokenizer)[name]
    old_in, old_head = tables(model)
    old_rows = old_in.shape[0]
    report = install_embeddings(model, new, old_tokenizer=tiny_tokenizer)
    new_in, new_head = tables(model)
    padding = old_rows - tiny_tokenizer.vocab_size
    assert new_in.shape[0] == new.vocab_size + padding == model.config.vocab_size
    # brute force: a new token with the bytes of some old token has one of those old rows
    shared = 0
    for j in range(new.vocab_size):
        if new.token_bytes(j) is None and j not in new.special_tokens:
            continue
        sources = [i for i in range(tiny_tokenizer.vocab_size) if _key(tiny_tokenizer, i) == _key(new, j)]
        if sources:
            shared += 1
            assert any(torch.equal(new_in[j], old_in[i]) and torch.equal(new_head[j], old_head[i])
                       for i in sources), j
        else:
            assert torch.equal(new_in[j], old_in[: tiny_tokenizer.vocab_size].mean(0))
    assert shared > 100 and f"{shared} of {new.vocab_size} new tokens shared" in report.notes[0]
    assert torch.equal(new_in[new.vocab_size:], old_in[tiny_tokenizer.vocab_size:])  # padding kept
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert tied == (name != "untied-llama")
    lm = HFCausalLM(model, new, runtime=None, name=name)
    ids = new.encode(TEXTS[0]).ids
    assert all(torch.isfinite(lp).all() for lp in lm.logprobs_batch([ids, ids[:3]]))
    state = lm.extend(lm.start(ids[:2]), ids[2:5])
    assert torch.isfinite(state.logprobs).all() and state.logprobs.shape[0] == new.vocab_size + padding
    assert abs(float(lm.score_ids(ids[2:6], context=ids[:2]))) < float("inf")


def test_the_model_config_follows_the_new_tokenizer(tiny_tokenizer, tiny_byte_fallback_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    report = install_embeddings(model, tiny_byte_fallback_tokenizer, old_tokenizer=tiny_tokenizer)
    new = tiny_byte_fallback_tokenizer
    assert model.config.vocab_size == model.vocab_size == new.vocab_size
    assert (model.config.bos_token_id, model.config.eos_token_id) == (new.bos_id, new.eos_id)
    assert model.generation_config.eos_token_id == new.eos_id
    changed = {c.path: c for c in report.changes}
    assert changed["config.eos_token_id"].after == repr(new.eos_id)
    assert changed["config.vocab_size"].before == repr(tiny_tokenizer.vocab_size)


# -- fake tokenizers and models: mapping and installation under hypothesis ------------

class TableTokenizer(Tokenizer):
    """A tokenizer that is only its byte view (what transplant reads)."""

    def __init__(self, pieces, specials=(), *, byte_view=True):
        self.table = list(pieces)
        self.specials = {}
        for literal in specials:
            self.specials[len(self.table)] = literal
            self.table.append(None)
        self.byte_view = byte_view
        self.name = "table"

    @property
    def vocab_size(self):
        return len(self.table)

    def encode(self, text, *, add_special_tokens=False, allow_special=False):
        return Encoding((), ())

    def decode(self, ids):
        return ""

    def token_bytes(self, token_id):
        return self.table[token_id]

    @property
    def special_tokens(self):
        return dict(self.specials)

    @property
    def has_byte_view(self):
        return self.byte_view


class FakeLM(torch.nn.Module):
    """Embedding + untied linear head with a bias, and a plain config."""

    def __init__(self, rows, dim=3, *, pad=None, eos=None):
        super().__init__()
        self.emb, self.head = torch.nn.Embedding(rows, dim), torch.nn.Linear(dim, rows, bias=True)
        self.config = types.SimpleNamespace(vocab_size=rows, pad_token_id=pad, eos_token_id=eos)

    def get_input_embeddings(self):
        return self.emb

    def get_output_embeddings(self):
        return self.head


pieces = st.lists(st.sampled_from([b"a", b"b", b"ab", b" ", b"the", b"\xc3", b"\xa9", b""]), max_size=12)
specials = st.lists(st.sampled_from(["<s>", "</s>", "<pad>"]), unique=True, max_size=3)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(old=pieces, old_specials=specials, new=pieces, new_specials=specials, data=st.data())
def test_map_shared_tokens_matches_by_bytes_and_literals(old, old_specials, new, new_specials, data):
    old_tok = TableTokenizer(data.draw(st.permutations(old)), old_specials)
    new_tok = TableTokenizer(new, data.draw(st.permutations(new_specials)))
    mapping = map_shared_tokens(old_tok, new_tok)
    old_keys = {_key(old_tok, i) for i in range(old_tok.vocab_size)}
    for j in range(new_tok.vocab_size):
        if _key(new_tok, j) in old_keys:
            assert _key(old_tok, mapping[j]) == _key(new_tok, j)
        else:
            assert j not in mapping
    assert map_shared_tokens(old_tok, old_tok) == {i: i for i in range(old_tok.vocab_size)}


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(old=pieces, new=pieces, extra=st.integers(0, 3), seed=st.integers(0, 3), data=st.data())
def test_install_copies_input_head_and_bias_rows_by_bytes(old, new, extra, seed, data):
    old_tok = TableTokenizer(old, ["<s>", "<pad>"])
    new_tok = TableTokenizer(data.draw(st.permutations(new)), data.draw(st.permutations(["<pad>", "<s>"])))
    torch.manual_seed(seed)
    model = FakeLM(old_tok.vocab_size + extra, pad=old_tok.vocab_size - 1, eos=old_tok.vocab_size - 2)
    emb, head, bias = (t.detach().clone() for t in (model.emb.weight, model.head.weight, model.head.bias))
    install_embeddings(model, new_tok, old_tokenizer=old_tok, init="normal", seed=seed)
    mapping = map_shared_tokens(old_tok, new_tok)
    rows = new_tok.vocab_size + extra
    assert model.emb.weight.shape == model.head.weight.shape == (rows, 3) and model.head.bias.shape == (rows,)
    assert model.head.out_features == model.emb.num_embeddings == model.config.vocab_size == rows
    for j, i in mapping.items():
        assert torch.equal(model.emb.weight[j], emb[i]) and torch.equal(model.head.weight[j], head[i])
        assert torch.equal(model.head.bias[j], bias[i])
    assert torch.equal(model.emb.weight[new_tok.vocab_size:], emb[old_tok.vocab_size:])
    specials = {v: k for k, v in new_tok.special_tokens.items()}
    assert (model.config.pad_token_id, model.config.eos_token_id) == (specials["<pad>"], specials["<s>"])
    x = torch.arange(rows)
    assert torch.isfinite(model.head(model.emb(x))).all()


# -- initialisation ---------------------------------------------------------------------

def test_initialisations(tiny_tokenizer, other_tokenizer):
    def run(**kw):
        model = untied_llama(tiny_tokenizer)
        install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, **kw)
        return tables(model)

    missing = [j for j in range(other_tokenizer.vocab_size)
               if j not in map_shared_tokens(tiny_tokenizer, other_tokenizer)]
    assert missing
    a, b, c = run(init="normal", seed=3), run(init="normal", seed=3), run(init="normal", seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0][missing], c[0][missing])
    calls = []

    def by_length(new_id, new_bytes, old_table):
        calls.append((new_id, new_bytes, old_table.shape))
        return torch.full((old_table.shape[1],), float(len(new_bytes or b"")))

    emb, head = run(init=by_length)
    first = float(len(other_tokenizer.token_bytes(missing[0])))
    assert torch.equal(emb[missing[0]], torch.full((32,), first))
    assert torch.equal(emb[missing], head[missing])
    assert len(calls) == 2 * len(missing) and calls[0][2] == (tiny_tokenizer.vocab_size, 32)


@pytest.mark.parametrize("init, match", [
    ("zeros", "init must be one of mean, normal or a function"),
    (3, "init must be one of"),
    (lambda i, b, t: torch.zeros(5), r"shape \(5,\) for new token"),
    (lambda i, b, t: torch.full((32,), float("nan")), "a non-finite row"),
    (lambda i, b, t: 1 / 0, "init raised ZeroDivisionError"),
])
def test_a_bad_init_is_a_config_error(init, match, tiny_tokenizer, other_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    with pytest.raises(ConfigError, match=match):
        install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, init=init)


# -- padding ------------------------------------------------------------------------------

def test_padding_rows_added_by_pad_to_multiple_of_get_no_probability(tiny_tokenizer, other_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    report = install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, pad_to_multiple_of=64)
    assert other_tokenizer.vocab_size == 300 and model.config.vocab_size == 320
    assert "output_embeddings.forward" in [c.path for c in report.changes]
    lm = HFCausalLM(model, other_tokenizer, runtime=None)
    lp = lm.logprobs_batch([other_tokenizer.encode(TEXTS[0]).ids])[0]
    assert torch.isneginf(lp[:, 300:]).all() and torch.isfinite(lp[:, :300]).all()
    assert torch.allclose(lp[:, :300].exp().sum(-1), torch.ones(lp.shape[0]))
    # back onto a tokenizer that fills every row: the stale mask goes
    install_embeddings(model, tiny_tokenizer, old_tokenizer=other_tokenizer, pad_to_multiple_of=1)
    assert torch.isfinite(logits(model, tiny_tokenizer)[0]).all()


def test_mask_padding_rows_masks_a_reloaded_model(tiny_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    mask_padding_rows(model, 310)
    mask_padding_rows(model, 315)  # replaces the first mask
    out = logits(model, tiny_tokenizer)[0]
    assert torch.isneginf(out[..., 315:]).all() and torch.isfinite(out[..., :315]).all()


@pytest.mark.parametrize("multiple", [0, -64, 2.5, True, "64"])
def test_a_bad_pad_to_multiple_of_is_a_config_error(multiple, tiny_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    with pytest.raises(ConfigError, match="pad_to_multiple_of"):
        install_embeddings(model, tiny_tokenizer, old_tokenizer=tiny_tokenizer, pad_to_multiple_of=multiple)


# -- typed errors and vocabulary mismatches ------------------------------------------------

def test_a_tokenizer_without_a_byte_view_is_refused(tiny_tokenizer):
    model, _ = tiny_llama(tiny_tokenizer)
    blind = TableTokenizer([b"a"] * 320, byte_view=False)
    with pytest.raises(ByteViewError, match="new_tokenizer 'table' has no byte view"):
        install_embeddings(model, blind, old_tokenizer=tiny_tokenizer)
    with pytest.raises(ByteViewError, match="old_tokenizer"):
        map_shared_tokens(blind, tiny_tokenizer)


def test_a_model_without_an_embedding_table_is_a_surgery_error(tiny_tokenizer):
    with pytest.raises(SurgeryError, match="no input embedding table"):
        install_embeddings(torch.nn.Linear(2, 2), tiny_tokenizer, old_tokenizer=tiny_tokenizer)


def test_a_vocabulary_mismatch_names_both_sizes(tiny_tokenizer, other_tokenizer):
    model, _ = tiny_llama(other_tokenizer)  # 300 rows: too few for the 320-id tokenizer
    with pytest.raises(IncompatibleComponentsError, match=r"has 300 rows but tokenizer .* has 320 ids"):
        install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer)
    model, _ = tiny_llama(tiny_tokenizer)
    exactly = r"table has 320 rows but tokenizer .* has 300 ids \(needs exactly 300 rows\)"
    with pytest.raises(IncompatibleComponentsError, match=exactly):
        install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, table=torch.zeros(320, 32))
    with pytest.raises(IncompatibleComponentsError, match="width"):
        install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, table=torch.zeros(300, 8))
    assert check_vocabulary(torch.zeros(330, 4), tiny_tokenizer, padded=True) == 330
    with pytest.raises(IncompatibleComponentsError, match="330 rows"):
        check_vocabulary(torch.zeros(330, 4), tiny_tokenizer)


def test_a_given_table_is_installed_as_is(tiny_tokenizer, other_tokenizer):
    model = untied_llama(tiny_tokenizer)
    table = torch.randn(300, 32, generator=torch.Generator().manual_seed(0))
    report = install_embeddings(model, other_tokenizer, old_tokenizer=tiny_tokenizer, table=table)
    assert torch.equal(model.get_input_embeddings().weight, table)
    assert "300 rows given" in report.changes[0].detail
    with pytest.raises(ConfigError, match="tied"):
        install_embeddings(tiny_llama(tiny_tokenizer)[0], other_tokenizer, old_tokenizer=tiny_tokenizer,
                           table=table, head_table=table)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_subtoken_mean_is_the_mean_of_the_pieces_rows(data):
    """FVT's row: the mean of the pieces' rows (brute force per token), the same from id lists and
    from the padded tensor with its mask, and differentiable: the gradient of the sum of the rows
    reaches table row j as the sum over tokens of (times j is a piece) / (number of pieces)."""
    from tokensmith import subtoken_mean

    rows, dim = data.draw(st.integers(1, 12)), data.draw(st.integers(1, 5))
    pieces = data.draw(st.lists(st.lists(st.integers(0, rows - 1), min_size=1, max_size=5), min_size=1,
                                max_size=8))
    table = torch.randn(rows, dim, generator=torch.Generator().manual_seed(len(pieces)), requires_grad=True)
    out = subtoken_mean(table, pieces)
    brute = torch.stack([table[p].mean(0) for p in pieces])
    assert torch.allclose(out, brute, atol=1e-6)
    width = max(map(len, pieces))
    ids = torch.tensor([p + [rows - 1] * (width - len(p)) for p in pieces])  # padding: any id, masked
    mask = torch.tensor([[k < len(p) for k in range(width)] for p in pieces])
    assert torch.equal(subtoken_mean(table, ids, mask), out)
    out.sum().backward()
    expected = torch.zeros(rows)
    for p in pieces:
        for j in p:
            expected[j] += 1 / len(p)
    assert torch.allclose(table.grad, expected[:, None].expand(rows, dim), atol=1e-6)


def test_subtoken_mean_refuses_what_has_no_mean():
    from tokensmith import InputError, subtoken_mean

    table, ids = torch.zeros(4, 2), torch.zeros(2, 2, dtype=torch.long)
    for pieces, mask, match in (([[0], []], None, "empty"), ([[0, 4]], None, "4 rows"),
                                ([["a"]], None, "ids"), (ids, None, "mask"),
                                (ids, torch.tensor([[True, False]]), "shape"),
                                (ids, torch.tensor([[True, False], [False, False]]), "no real piece")):
        with pytest.raises(InputError, match=match):
            subtoken_mean(table, pieces, mask)
