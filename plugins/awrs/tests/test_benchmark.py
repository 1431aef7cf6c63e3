"""The registered `awrs` benchmark, quick, on a tiny random model: a Report whose numbers agree."""

import pytest

from tokensmith import Report


@pytest.fixture(scope="module")
def report():
    from tokensmith import Registry

    benchmark = Registry.from_environment().build("benchmark", {"type": "awrs", "model": "tiny-llama",
                                                                 "threads": 1})
    return benchmark.run(quick=True)


def test_the_benchmark_is_registered_with_its_parameters(installed_registry):
    record = installed_registry.get("benchmark", "awrs")
    assert record.distribution == "tokensmith-awrs"
    assert {p.name for p in installed_registry.parameters(record).parameters} == {"model", "threads"}


def test_quick_run_reports_awrs_against_masking(report):
    assert isinstance(report, Report) and report.name == "awrs"
    assert Report.from_json(report.to_json()) == report
    summary, runs = report.tables
    assert {(r[0], r[1]) for r in summary.rows} == {(c, m) for c in ("regex", "json-schema")
                                                   for m in ("awrs", "awrs-no-closure", "awrs-paper",
                                                             "masking")}
    for constraint in ("regex", "json-schema"):
        m = report.metrics
        # masking checks every token of the vocabulary (320 here) at every step
        assert m[f"{constraint}.masking_checks_per_token"] >= 300
        assert m[f"{constraint}.masking_checks_vs_awrs"] == pytest.approx(
            m[f"{constraint}.masking_checks_per_token"] / m[f"{constraint}.awrs_checks_per_token"])
        assert m[f"{constraint}.paper_checks_vs_awrs"] == pytest.approx(
            m[f"{constraint}.awrs-paper_checks_per_token"] / m[f"{constraint}.awrs_checks_per_token"])
        assert m[f"{constraint}.no_closure_checks_vs_awrs"] == pytest.approx(
            m[f"{constraint}.awrs-no-closure_checks_per_token"] / m[f"{constraint}.awrs_checks_per_token"])
        rows = [r for r in runs.rows if r[0] == constraint and r[1] == "awrs"]
        checks, steps = sum(r[7] for r in rows), sum(r[5] for r in rows)
        assert all(r[12] in (0, 1) for r in rows)
        assert m[f"{constraint}.awrs_checks_per_token"] == pytest.approx(checks / steps)
    assert report.provenance.model == "tiny-llama" and report.provenance.extra["quick"] is True
    assert {s.group for s in report.series} == {"constraint checks per token", "ms per token (median run)"}
