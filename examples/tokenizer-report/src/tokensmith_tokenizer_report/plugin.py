"""Hook implementations of tokensmith-tokenizer-report (records only)."""

from __future__ import annotations

from tokensmith import Component, hookimpl


@hookimpl
def tokensmith_register_evaluations():
    return [Component("tokenizer-report", "tokensmith_tokenizer_report.report:TokenizerReport",
                      "any tokenizers side by side on every installed tokenizer evaluation: "
                      "one table, one plot")]
