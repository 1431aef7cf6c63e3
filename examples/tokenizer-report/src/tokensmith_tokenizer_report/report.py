"""tokenizer-report: several tokenizers side by side on the installed tokenizer evaluations.

A composition, not a technique: it builds each evaluation by its registered name (a plugin never
imports another) and runs it on every tokenizer — tokensmith-baselines' ``tokenizer-metrics``
(bytes per token, fertility, parity, Rényi efficiency, unrepresentable bytes...) and, when
their plugins are installed, ``linguistic-integrity`` (%TR, %Pure), ``domain-terms`` (tokens
per domain term) and ``charbench-covariates`` (tokens per word, target token length). An
evaluation that is not installed, or that cannot score a tokenizer (no validator for its
language, its data absent), is a note and empty cells, never a failed report.
"""

from __future__ import annotations

from typing import Any

import attrs

from tokensmith import (
    BuildContext,
    ConfigError,
    DataUnavailableError,
    Evaluation,
    IncompatibleComponentsError,
    Report,
    Series,
    Table,
    positive_int,
)

#: evaluation -> (its metrics shown as columns, the plot group of each)
COLUMNS: dict[str, dict[str, str]] = {
    "tokenizer-metrics": {"bytes_per_token": "compression", "characters_per_token": "compression",
                          "fertility": "compression", "parity": "compression",
                          "renyi_efficiency": "shares", "shannon_efficiency": "shares",
                          "vocabulary_used_share": "shares", "lossy_line_share": "shares",
                          "unrepresentable_bytes": "coverage", "unencodable_lines": "coverage"},
    "linguistic-integrity": {"tr_percent": "percent", "pure_percent": "percent"},
    "domain-terms": {"tokens_per_domain_term": "compression"},
    "charbench-covariates": {"mean_tokens_per_word": "compression",
                             "mean_target_token_length": "compression"},
}
PLUGINS = {"tokenizer-metrics": "tokensmith-baselines",
           "linguistic-integrity": "tokensmith-linguistic-integrity",
           "domain-terms": "tokensmith-kl3m", "charbench-covariates": "tokensmith-charbench"}


@attrs.define
class TokenizerReport(Evaluation):
    """Every installed tokenizer evaluation on every tokenizer given: a row per tokenizer, a
    column per metric, bars per metric group."""

    name = "tokenizer-report"
    targets = ("tokenizers", "pipeline", "tokenizer")

    evaluations: tuple[str, ...] = attrs.field(default=tuple(COLUMNS), metadata={
        "doc": "registered evaluations to run, by name (one not installed is a note)"})
    sample: int | None = attrs.field(default=None, validator=attrs.validators.optional(positive_int),
                                     metadata={"doc": "passed to every evaluation as its sample (lines, "
                                                      "words, items: each says which); None: each one's "
                                                      "default"})
    dataset: str = attrs.field(default="licenses", metadata={"doc": "tokenizer-metrics' corpus (a dataset)"})
    field: str = attrs.field(default="text", metadata={"doc": "tokenizer-metrics' text field"})
    dataset_options: dict[str, Any] = attrs.field(factory=dict, metadata={
        "doc": "tokenizer-metrics' dataset parameters"})
    parallel: tuple[str, str] | None = attrs.field(default=("tur", "eng"), metadata={
        "doc": "tokenizer-metrics' UDHR translation pair for parity (None: no parity)"})
    options: dict[str, dict[str, Any]] = attrs.field(factory=dict, metadata={
        "doc": "more parameters per evaluation, e.g. {\"linguistic-integrity\": {...}}"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def _registry(self) -> Any:
        if self.ctx is not None and getattr(self.ctx, "registry", None) is not None:
            return self.ctx.registry
        from tokensmith import default_registry

        return default_registry()

    def _parameters(self, name: str) -> dict[str, Any]:
        params: dict[str, Any] = {} if self.sample is None else {"sample": self.sample}
        if name == "tokenizer-metrics":
            params.update(dataset=self.dataset, field=self.field, dataset_options=self.dataset_options,
                          parallel=None if self.parallel is None else list(self.parallel))
        return {**params, **self.options.get(name, {})}

    def run(self, target: Any, *, quick: bool = False) -> Report:
        tokenizers = self.tokenizers_of(target)
        registry = self._registry()
        installed = {r.name for r in registry.components("evaluation")}
        unknown = sorted(set(self.options) - set(self.evaluations))
        if unknown:
            raise ConfigError(f"options name evaluation(s) not in evaluations: {', '.join(unknown)}",
                              component=f"evaluation '{self.name}'",
                              hint="add them to evaluations, or drop them")
        notes: list[str] = []
        results: dict[str, dict[str, dict[str, float]]] = {label: {} for label in tokenizers}
        ran: list[str] = []
        for name in self.evaluations:
            if name not in installed:
                plugin = PLUGINS.get(name, "the plugin that registers it")
                notes.append(f"{name}: not installed ({plugin}); its columns are left out")
                continue
            if name == self.name:
                raise ConfigError(f"{self.name} cannot compose itself", component=f"evaluation '{self.name}'")
            evaluation = registry.build("evaluation", {"type": name, **self._parameters(name)}, self.ctx)
            ran.append(name)
            for label, tokenizer in tokenizers.items():
                try:
                    report = evaluation.run(tokenizer, quick=quick)
                except (IncompatibleComponentsError, DataUnavailableError) as exc:
                    notes.append(f"{name} on {label}: not measured ({exc.message})")
                    continue
                results[label][name] = dict(report.metrics)
                notes += [f"{name} on {label}: {note}" for note in report.notes
                          if not note.startswith("corpus:") or label == next(iter(tokenizers))]
        if not ran:
            raise ConfigError(f"none of the evaluations {', '.join(self.evaluations)} is installed",
                              component=f"evaluation '{self.name}'",
                              hint="install tokensmith-baselines (tokenizer-metrics) and the other plugins")
        columns: list[tuple[str, str, str]] = []  # (evaluation, metric, group)
        for name in ran:
            measured = {m for label in results for m in results[label].get(name, {})}
            wanted = COLUMNS.get(name) or {m: name for m in sorted(measured)}  # unknown: every metric
            columns += [(name, metric, group) for metric, group in wanted.items() if metric in measured]
        rows = tuple((label, *(results[label].get(name, {}).get(metric) for name, metric, _ in columns))
                     for label in tokenizers)
        metrics = {f"{label}.{name}.{metric}": value for label, by in results.items()
                   for name, values in by.items() for metric, value in values.items()}
        series = []
        for label, *values in rows:
            by_group: dict[str, tuple[list[str], list[float]]] = {}
            for (_, metric, group), value in zip(columns, values, strict=True):
                if value is not None:
                    xs, ys = by_group.setdefault(group, ([], []))
                    xs.append(metric)
                    ys.append(value)
            series += [Series(f"{label} ({group})", xs, ys, plot="bar", group=group)
                       for group, (xs, ys) in by_group.items()]
        tables = (Table("tokenizers", ("tokenizer", *(metric for _, metric, _ in columns)), rows),
                  Table("columns", ("column", "evaluation", "group"),
                        tuple((metric, name, group) for name, metric, group in columns)))
        return Report(name=self.name, metrics=metrics, tables=tables, series=tuple(series),
                      notes=tuple(notes))
