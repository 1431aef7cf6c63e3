"""Contract suites: checks every implementation of an interface must pass (properties
over hypothesis-drawn inputs where an input space is involved).

Subclass one in a test module and provide the fixtures its docstring names. Needs
``hypothesis`` (the ``tokensmith[test]`` extra).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokensmith.core.constraint import FunctionConstraint
from tokensmith.core.errors import IncompatibleComponentsError, InputError, SurgeryError
from tokensmith.core.records import Encoding, Generation, ModelReport

_settings = settings(max_examples=40, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.differing_executors])


def representable_text(tokenizer, **kw) -> st.SearchStrategy[str]:
    """Unicode text whose UTF-8 bytes the tokenizer can all represent, often with one of its
    special-token strings inside: plain text is encoded as text, specials included."""
    bad = tokenizer.unrepresentable_bytes
    specials = sorted(s for s in tokenizer.special_tokens.values() if s and not set(s.encode("utf-8")) & bad)
    if bad >= set(range(0x80, 0x100)):  # a character vocabulary: only ASCII can be spelled alone
        text = st.text(alphabet=st.sampled_from([chr(b) for b in range(0x80) if b not in bad] or ["a"]), **kw)
    else:
        text = st.text(**kw)
    normalize = getattr(tokenizer, "normalize", None)
    if normalize is not None and "▁" in normalize(" "):  # spaces spelled "▁": the text's own "▁" is lost
        text = text.map(lambda t: t.replace("▁", " "))
    if specials:
        text = st.one_of(text, st.tuples(text, st.sampled_from(specials), text).map("".join))
    return text.filter(lambda t: not set(t.encode("utf-8")) & bad)


class TokenizerContract:
    """Needs fixture ``tokenizer`` (a :class:`~tokensmith.core.tokenizer.Tokenizer`)."""

    def test_byte_view_matches_decode(self, tokenizer):
        from tokensmith.core.tokenizer import check_byte_view

        check_byte_view(tokenizer, samples=("hello world", "a = b + 1"))

    def test_special_tokens_have_no_bytes(self, tokenizer):
        assert all(tokenizer.token_bytes(i) is None for i in tokenizer.special_ids)

    @_settings
    @given(data=st.data())
    def test_round_trip(self, tokenizer, data):
        text = data.draw(representable_text(tokenizer, max_size=40))
        enc = tokenizer.encode(text)
        assert isinstance(enc, Encoding) and len(enc.ids) == len(enc.offsets)
        assert all(0 <= i < tokenizer.vocab_size for i in enc.ids)
        if tokenizer.lossless:
            assert tokenizer.decode_bytes(enc.ids) == text.encode("utf-8")
            assert tokenizer.decode(enc.ids) == text

    @_settings
    @given(data=st.data())
    def test_batch_equals_single(self, tokenizer, data):
        texts = data.draw(st.lists(representable_text(tokenizer, max_size=20), max_size=4))
        assert tokenizer.encode_batch(texts) == [tokenizer.encode(t) for t in texts]

    def test_special_strings_are_text(self, tokenizer):
        """A special-token string in text is not a control token (no prompt injection)."""
        for text in tokenizer.special_tokens.values():
            if not text or set(text.encode("utf-8")) & tokenizer.unrepresentable_bytes:
                continue
            ids = tokenizer.encode(f"a{text}b").ids
            assert not set(ids) & (tokenizer.special_ids - {tokenizer.unk_id}), text
            if tokenizer.lossless:
                assert tokenizer.decode(ids) == f"a{text}b"

    def test_rejects_non_text(self, tokenizer):
        with pytest.raises(InputError):
            tokenizer.encode(b"bytes")  # type: ignore[arg-type]
        with pytest.raises(InputError):
            tokenizer.encode("caf\udce9")  # a lone surrogate (surrogateescape of byte 0xE9)
        with pytest.raises(InputError):
            tokenizer.encode_batch("ab")  # a str is not a batch of its characters

    @pytest.mark.parametrize("bad", [[1.0], [True], ["3"], [None], [[1]], "ab", None, 3])
    def test_rejects_ids_that_are_not_ints(self, tokenizer, bad):
        with pytest.raises(InputError):
            tokenizer.decode(bad)
        with pytest.raises(InputError):
            tokenizer.decode_bytes(bad)

    def test_rejects_ids_outside_the_vocabulary(self, tokenizer):
        for bad in ([tokenizer.vocab_size], [-1], [0, 2**70]):
            with pytest.raises(InputError):
                tokenizer.decode(bad)
            with pytest.raises(InputError):
                tokenizer.decode_bytes(bad)


class EmbeddingContract:
    """Needs fixtures ``embedding_provider`` and ``model_and_tokenizer`` (a causal LM and its tokenizer)."""

    def test_build_maps_ids_to_vectors(self, embedding_provider, model_and_tokenizer):
        import torch

        model, tok = model_and_tokenizer
        module = embedding_provider.build(model, tok)
        ids = torch.tensor([[0, 1, 2]])
        out = module(ids)
        assert out.shape[:2] == (1, 3) and out.shape[-1] == model.config.hidden_size
        assert torch.isfinite(out).all()

    def test_apply_reports_and_model_runs(self, embedding_provider, model_and_tokenizer):
        import torch

        model, tok = model_and_tokenizer
        report = embedding_provider.apply(model, tok)
        assert isinstance(report, ModelReport)
        ids = torch.tensor([tok.encode("hello world").ids])
        logits = model(input_ids=ids).logits
        assert torch.isfinite(logits).all()


class NormalizationContract:
    """Needs fixtures ``normalization_provider`` and ``model`` (with LayerNorm/RMSNorm layers)."""

    def test_report_lists_every_change(self, normalization_provider, model):
        from tokensmith.core.normalization import find_norm_layers

        before = {layer.path: type(layer.module).__name__ for layer in find_norm_layers(model)[0]}
        new_model, report = normalization_provider.replace(model)
        assert isinstance(report, ModelReport)
        for change in report.changes:
            assert change.path in before and change.before == before[change.path]
            assert type(new_model.get_submodule(change.path)).__name__ == change.after
        unchanged = set(before) - {c.path for c in report.changes}
        for path in unchanged:
            assert type(new_model.get_submodule(path)).__name__ == before[path]

    def test_model_still_runs(self, normalization_provider, model):
        import torch

        new_model, _ = normalization_provider.replace(model)
        ids = torch.arange(8).unsqueeze(0)
        assert torch.isfinite(new_model(input_ids=ids).logits).all()

    def test_no_norm_layers_is_an_error(self, normalization_provider):
        import torch.nn as nn

        with pytest.raises(SurgeryError):
            normalization_provider.replace(nn.Sequential(nn.Linear(4, 4)))


class TokenizerStageContract:
    """Needs fixture ``stage`` (a :class:`~tokensmith.core.kinds.TokenizerStage`)."""

    def test_has_a_name(self, stage):
        assert isinstance(stage.name, str) and stage.name

    @_settings
    @given(text=st.text(max_size=60))
    def test_text_in_text_out(self, stage, text):
        out = stage.normalize(text)
        assert isinstance(out, str)
        assert stage.normalize(text) == out  # deterministic

    def test_in_a_pipeline_prepare(self, stage, tiny_lm):
        from tokensmith.core.pipeline import Pipeline, PipelineSpec
        from tokensmith.core.runtime import Runtime

        pipe = Pipeline(spec=PipelineSpec(model="tiny-llama"), runtime=Runtime(), model=None,
                        tokenizer=tiny_lm.tokenizer, lm=tiny_lm, decoder=None, stages=(stage,))
        assert pipe.prepare("Hello, World") == stage.normalize("Hello, World")


class DecoderContract:
    """Needs fixtures ``decoder`` and ``tiny_lm`` (provided by the tokensmith pytest plugin).

    A decoder whose class says ``accepts_constraint = True`` must honour a constraint:
    every generated prefix is allowed, and a finished (``"stop"``) text is accepted.
    One that does not accept constraints must refuse one with
    :class:`~tokensmith.IncompatibleComponentsError`.
    """

    @_settings
    @given(prompt=st.sampled_from(["The", "def f", "a b c", "capital of Fra"]),
           n=st.integers(0, 6), seed=st.integers(0, 3))
    def test_generation_record(self, decoder, tiny_lm, prompt, n, seed):
        gen = decoder.generate(tiny_lm, prompt, max_new_tokens=n, seed=seed)
        assert isinstance(gen, Generation)
        assert len(gen.ids) <= n
        assert all(0 <= i < tiny_lm.vocab_size for i in gen.ids)
        assert isinstance(gen.text, str) and isinstance(gen.bytes, bytes)
        assert gen.text == gen.bytes.decode("utf-8", errors="replace")
        assert isinstance(gen.counters.get("lm_calls"), int) and gen.counters["lm_calls"] >= 0
        if n == 0:
            assert gen.ids == () and gen.bytes == b""

    def test_deterministic_for_a_seed(self, decoder, tiny_lm):
        a = decoder.generate(tiny_lm, "The quick", max_new_tokens=5, seed=1)
        b = decoder.generate(tiny_lm, "The quick", max_new_tokens=5, seed=1)
        assert a.ids == b.ids and a.bytes == b.bytes

    def test_rejects_non_text_prompt(self, decoder, tiny_lm):
        with pytest.raises(InputError):
            decoder.generate(tiny_lm, 42, max_new_tokens=2)  # type: ignore[arg-type]

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
    def test_rejects_bad_max_new_tokens(self, decoder, tiny_lm, bad):
        with pytest.raises(InputError):
            decoder.generate(tiny_lm, "The", max_new_tokens=bad)

    def test_rejects_an_empty_prompt(self, decoder, tiny_lm):
        with pytest.raises(InputError):
            decoder.generate(tiny_lm, "", max_new_tokens=2)

    @pytest.mark.parametrize("bad", [-1, 2**63, 1.0, "0", True])
    def test_rejects_a_bad_seed(self, decoder, tiny_lm, bad):
        with pytest.raises(InputError):
            decoder.generate(tiny_lm, "The", max_new_tokens=1, seed=bad)

    def test_constraint_is_honoured_or_refused(self, decoder, tiny_lm):
        alphabet = set(b"ab ")
        constraint = FunctionConstraint(lambda p: set(p) <= alphabet, name="only-a-b-space")
        if not getattr(decoder, "accepts_constraint", False):
            with pytest.raises(IncompatibleComponentsError):
                decoder.generate(tiny_lm, "The", max_new_tokens=3, constraint=constraint, seed=0)
            return
        for seed in range(3):
            gen = decoder.generate(tiny_lm, "The", max_new_tokens=6, constraint=constraint, seed=seed)
            assert set(gen.bytes) <= alphabet, gen.bytes
            assert constraint.checks > 0
            if gen.finish_reason == "stop":
                assert constraint.accepts(gen.bytes)


class ConstraintContract:
    """Needs fixtures ``constraint``, ``accepted`` and ``rejected`` (lists of bytes)."""

    def test_prefixes_of_accepted_are_allowed(self, constraint, accepted):
        for text in accepted:
            assert constraint.accepts(text)
            for cut in range(len(text) + 1):
                assert constraint.allows(text[:cut]), (text, cut)

    def test_rejected_are_not_accepted(self, constraint, rejected):
        for text in rejected:
            assert not constraint.accepts(text)

    @_settings
    @given(data=st.data())
    def test_allowed_prefixes_are_prefix_closed(self, constraint, accepted, rejected, data):
        """``allows(x)`` means x extends to an accepted string, so every prefix of x does
        too; and an accepted string is allowed."""
        seeds = [t for t in accepted + rejected if t]
        pieces = st.binary(max_size=8) if not seeds else st.one_of(
            st.binary(max_size=8), st.sampled_from(seeds).flatmap(
                lambda t: st.integers(0, len(t)).map(lambda k: t[:k])))
        text = data.draw(st.lists(pieces, max_size=3).map(b"".join))
        if constraint.accepts(text):
            assert constraint.allows(text)
        if constraint.allows(text):
            assert all(constraint.allows(text[:k]) for k in range(len(text)))

    def test_every_check_is_counted(self, constraint, accepted):
        constraint.reset_counters()
        assert constraint.checks == 0
        constraint.allows(accepted[0][:1])
        constraint.accepts(accepted[0])
        assert constraint.checks >= 2

    def test_rejects_text_input(self, constraint):
        with pytest.raises(InputError):
            constraint.allows("text")  # type: ignore[arg-type]


def trainer_corpus() -> list[str]:
    """What :class:`TokenizerTrainerContract` trains on: the lines of ``TINY_CORPUS``, twice."""
    from tokensmith.adapters.models import TINY_CORPUS

    return TINY_CORPUS.splitlines(keepends=True) * 2


def _encodes(tokenizer, text: str) -> bool:
    from tokensmith.core.errors import UnrepresentableTextError

    try:
        tokenizer.encode(text)
    except UnrepresentableTextError:
        return False
    return True


class TokenizerTrainerContract(TokenizerContract):
    """Needs fixture ``trainer`` (a :class:`~tokensmith.core.kinds.TokenizerTrainer`).

    The tokenizer it trains on :func:`trainer_corpus` passes every :class:`TokenizerContract`
    check, has at most the trainer's ``vocab_size`` ids, a byte view verified on the corpus,
    and saves to a directory whose ``tokenizer.json`` loads back (``HFTokenizer.from_file``,
    what the ``hf-file`` tokenizer does) to the same fingerprint, ids and bytes. A trainer
    whose class says ``deterministic = True`` gives the same fingerprint again, from a list
    or a generator alike.
    """

    @pytest.fixture
    def tokenizer(self, trainer):
        return trainer.train(trainer_corpus(), progress=False)

    @pytest.fixture
    def reloaded(self, tokenizer, tmp_path):
        """The trained tokenizer saved to a directory and loaded back as ``hf-file`` does."""
        from tokensmith.adapters.hf_tokenizer import HFTokenizer

        written = tokenizer.save(tmp_path / "trained")
        assert written == tmp_path / "trained" / "tokenizer.json" and written.is_file()
        return HFTokenizer.from_file(tmp_path / "trained")

    def test_trains_a_tokenizer_within_its_vocabulary_size(self, trainer, tokenizer):
        from tokensmith.core.tokenizer import Tokenizer

        assert isinstance(tokenizer, Tokenizer)
        limit = getattr(trainer, "vocab_size", None)
        assert limit is None or tokenizer.vocab_size <= limit
        assert len(tokenizer.fingerprint()) == 64

    def test_byte_view_matches_decode(self, tokenizer):
        """On the corpus too; a vocabulary without byte fallback may lack characters of the
        generic samples ("=" is not in the corpus), so only what it can encode is checked."""
        from tokensmith.core.tokenizer import check_byte_view

        samples = [t for t in ("hello world", "a = b + 1", *trainer_corpus()) if _encodes(tokenizer, t)]
        assert len(samples) > len(trainer_corpus()) // 2, "the tokenizer cannot encode its own corpus"
        anchor = None
        if tokenizer.model_type == "wordpiece":  # a lone "##ing" decodes as "##ing": put a word first
            prefix = tokenizer.describe()["model"].get("continuing_subword_prefix") or "##"
            anchor = min(i for t, i in tokenizer.vocab().items()
                         if not t.startswith(prefix) and i not in tokenizer.special_ids)
        check_byte_view(tokenizer, samples=samples, anchor=anchor)

    def test_saves_and_reloads_identically(self, tokenizer, reloaded):
        assert reloaded.fingerprint() == tokenizer.fingerprint()
        assert reloaded.vocab_size == tokenizer.vocab_size and reloaded.byte_table == tokenizer.byte_table
        assert reloaded.special_tokens == tokenizer.special_tokens
        assert (reloaded.bos_id, reloaded.eos_id, reloaded.pad_id, reloaded.unk_id) == \
            (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.unk_id)
        lines = [line for line in trainer_corpus() if _encodes(tokenizer, line)]
        assert [e.ids for e in reloaded.encode_batch(lines)] == [e.ids for e in tokenizer.encode_batch(lines)]

    @_settings
    @given(data=st.data())
    def test_reloaded_encodes_the_same(self, tokenizer, reloaded, data):
        text = data.draw(representable_text(tokenizer, max_size=40))
        ids = tokenizer.encode(text).ids
        assert reloaded.encode(text).ids == ids and reloaded.decode_bytes(ids) == tokenizer.decode_bytes(ids)
        assert reloaded.decode(ids) == tokenizer.decode(ids)

    def test_deterministic(self, trainer, tokenizer):
        if not getattr(trainer, "deterministic", True):
            pytest.skip(f"{type(trainer).__name__} says it is not deterministic")
        assert trainer.train(trainer_corpus(), progress=False).fingerprint() == tokenizer.fingerprint()
        streamed = trainer.train((line for line in trainer_corpus()), progress=False)
        assert streamed.fingerprint() == tokenizer.fingerprint()

    @pytest.mark.parametrize("corpus", ["one text, not a corpus", ["fine", b"bytes"], ["caf\udce9"], [],
                                        None, ["", ""]])
    def test_refuses_what_is_not_a_corpus(self, trainer, corpus):
        with pytest.raises(InputError):
            trainer.train(corpus, progress=False)
