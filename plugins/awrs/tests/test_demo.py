"""The demo section on a tiny random model: a Report of both decoders' text, checks and status."""

import io
import json
from types import SimpleNamespace

from tokensmith_awrs.demo import SCHEMA, AWRSDemo
from tokensmith_awrs.json_schema import JSONSchemaConstraint

from tokensmith import Report


def test_demo_reports_awrs_against_masking(tiny_lm):
    out = io.StringIO()
    report = AWRSDemo().run(SimpleNamespace(lm=tiny_lm), out)
    assert isinstance(report, Report)
    rows = {row[0]: row for row in report.tables[0].rows}
    assert set(rows) == {"awrs", "masking"}
    for label, text, _, status, checks, _, _ in rows.values():
        constraint = JSONSchemaConstraint(SCHEMA)
        assert constraint.allows(text.encode())  # every prefix it wrote is still allowed
        if status == "complete, schema-valid":
            assert set(json.loads(text)) == {"name", "age", "city"}
        assert checks == report.metrics[f"{label}_checks_per_token"] > 0
    # masking checks the whole vocabulary at every step; AWRS only the tokens it visits
    assert report.metrics["masking_checks_per_token"] >= tiny_lm.tokenizer.vocab_size - 1
    assert report.metrics["masking_checks_vs_awrs"] > 1
    assert "\x1b" not in out.getvalue() and "more constraint checks per token" in out.getvalue()
    from tokensmith_awrs.grammars import available

    if available():  # the Lark section: SMC posterior and masking frequencies, each a distribution
        lark = report.tables[1]
        for column in (1, 2):
            total = sum(row[column] for row in lark.rows)
            assert total == 0 or abs(total - 1) < 1e-9
    else:
        assert any("llguidance is not installed" in note for note in report.notes)


def test_demo_without_a_language_model_says_so():
    out = io.StringIO()
    report = AWRSDemo().run(SimpleNamespace(lm=None), out)
    assert report.notes and not report.metrics and "skipped" in out.getvalue()
