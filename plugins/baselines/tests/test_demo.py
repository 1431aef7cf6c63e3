"""The demo section returns a Report of what it printed: every prompt x decoder continuation."""

import io
from types import SimpleNamespace

from tokensmith_baselines.decoding import GreedyDecoder
from tokensmith_baselines.demo import NEW_TOKENS, PROMPTS, BaselineDemo

from tokensmith import Report


def test_demo_reports_each_continuation_and_prints_plain_text(tiny_lm):
    out = io.StringIO()
    report = BaselineDemo().run(SimpleNamespace(lm=tiny_lm), out)
    assert isinstance(report, Report) and report.name == "baselines"
    (table,) = report.tables
    rows = {(prompt, decoder): (text, tokens) for prompt, decoder, text, tokens, _ in table.rows}
    assert len(rows) == 3 * len(PROMPTS)
    for prompt in PROMPTS:
        greedy = GreedyDecoder().generate(tiny_lm, prompt, max_new_tokens=NEW_TOKENS)
        assert rows[(prompt, "greedy")] == (greedy.text, len(greedy.ids))
        healed = GreedyDecoder(token_healing=True).generate(tiny_lm, prompt, max_new_tokens=NEW_TOKENS)
        assert rows[(prompt, "greedy+healing")] == (healed.text, len(healed.ids))
    assert set(report.metrics) == {"tokens_per_s[greedy]", "tokens_per_s[greedy+healing]",
                                   "tokens_per_s[sample T=0.7]"}
    text = out.getvalue()
    assert "\x1b" not in text and "token healing" in text and "continuations" in text
    assert Report.from_json(report.to_json()) == report
