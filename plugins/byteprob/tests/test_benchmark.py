"""The registered `byteprob` benchmark, quick, on a tiny random model: a Report whose numbers agree."""

import pytest

from tokensmith import Report


@pytest.fixture(scope="module")
def report():
    from tokensmith import Registry

    return Registry.from_environment().build("benchmark", {"type": "byteprob", "model": "tiny-llama"}) \
        .run(quick=True)


def test_quick_run_is_exact_and_reports_every_part(report):
    assert isinstance(report, Report) and report.name == "byteprob"
    assert Report.from_json(report.to_json()) == report
    m = report.metrics
    assert m["toy_max_error"] < 1e-12 and m["model_max_error"] < 1e-6
    assert m["byte_distribution_vs_token_step"] == pytest.approx(
        m["ms_per_next_byte_distribution"] / m["ms_per_cached_token_step"])
    assert m["lm_forwards_per_byte"] > 0 and m["state_memory_ratio"] > 0
    # the bound checked on a float64 copy of the model: no float32 batch noise in the true error
    assert m["float64_states"] > 0 and m["float64_true_error_minus_bound_max"] <= 1e-12
    assert any("float64 copy of the model" in n for n in report.notes)
    titles = [t.title for t in report.tables]
    assert titles[0].startswith("max |error|") and "mid-word prompts" in titles
    mid = report.tables[titles.index("mid-word prompts")]
    assert all(0 <= p <= 1 for row in mid.rows for p in row[2:5])
    assert any("ensemble: skipped" in n for n in report.notes)


def test_the_code_corpus_is_a_seeded_split_of_module_names():
    from tokensmith_byteprob.benchmark import CODE_MODULES, code_corpus

    from tokensmith import split_of

    train, held = code_corpus()
    eval_names = [n for n in CODE_MODULES if split_of(n, eval_fraction=0.2, seed=0) == "eval"]
    assert eval_names and len(train) == len(CODE_MODULES) - len(eval_names)
    assert len(held) == 300 and held not in "".join(train)
