"""The ``tokensmith`` command line: plugins, components, run, train, generate, demo, eval, bench.

Every subcommand's ``--help`` lists its options. Errors are one line naming the
component (``--debug`` shows the traceback); output is plain text when it is
not a terminal, and a closed pipe (``tokensmith plugins | head -1``) ends quietly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from tokensmith.core.errors import ConfigError, TokensmithError, blame
from tokensmith.core.kinds import KINDS
from tokensmith.core.pipeline import PipelineSpec
from tokensmith.core.tokenizer import TrustedText

ALLOW_SPECIAL = ("read special-token strings in the prompt (<|im_start|>...) as control tokens; "
                 "by default they are plain text")


def _registry():
    from tokensmith import default_registry

    return default_registry()


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _params(pairs: list[str] | None) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r} is not KEY=VALUE", component="cli")
        out[key.strip()] = _parse_value(value)
    return out


def _component(raw: str, option: str) -> Any:
    """A component given on the command line: a registered name, or a JSON table
    (``'{"type": "regex", "pattern": "[0-9]+"}'``)."""
    if raw.lstrip().startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{option} {raw!r} is not a JSON table: {exc}", component="cli") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{option} {raw!r} must be a name or a JSON table", component="cli")
        return value
    return raw


def _signature(reg, record) -> dict[str, Any]:
    try:
        sig = reg.parameters(record)
        return {"parameters": [p.to_json() for p in sig.parameters],
                "accepts_constraint": reg.accepts_constraint(record) if record.kind == "decoder" else None}
    except TokensmithError as exc:
        return {"parameters": None, "error": str(exc)}


def _collisions(reg) -> list[dict[str, Any]]:
    return [{"kind": kind, "name": name, "providers": [r.distribution for r in recs],
             "qualified": [r.qualified_names[1] for r in recs]} for kind, name, recs in reg.collisions()]


def cmd_plugins(args) -> int:
    reg = _registry()
    rows = []
    for name, info in sorted(reg.plugins.items()):
        comps = [c for c in reg.components() if c.plugin == name]
        failure = reg.failed.get(name)
        rows.append({"name": name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "hooks": reg.hooks_of(name), "status": "ok" if not failure else
                     "partly failed", "error": failure.error if failure else None,
                     "components": [{"kind": c.kind, "name": c.name, "summary": c.summary,
                                     "collides_with": [o.distribution for o in reg.components(c.kind)
                                                       if o.name == c.name and o is not c],
                                     "qualified_name": c.qualified_names[1]} for c in comps]})
    for name, failure in sorted(reg.failed.items()):
        if name not in reg.plugins:
            rows.append({"name": name, "distribution": failure.distribution, "version": failure.version,
                         "module": None, "hooks": [], "status": "failed", "error": failure.error,
                         "components": []})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        status = "" if row["status"] == "ok" else f"  [{row['status'].upper()}]"
        print(f"{row['name']}  ({row['distribution']} {row['version']}){status}")
        if row["error"]:
            print(f"  error: {row['error']}")
        if row["status"] != "failed":
            print(f"  hooks: {', '.join(row['hooks']) or '-'}")
        width = max([len(c["name"]) for c in row["components"]] + [16])
        kind_width = max([len(c["kind"]) for c in row["components"]] + [14])
        for c in row["components"]:
            clash = f"  (also registered by {', '.join(c['collides_with'])}: use {c['qualified_name']!r})" \
                if c["collides_with"] else ""
            print(f"  {c['kind']:<{kind_width}} {c['name']:<{width}} {c['summary']}{clash}")
    for col in _collisions(reg):
        print(f"collision: {col['kind']} '{col['name']}' is registered by {', '.join(col['providers'])}; "
              f"pipelines must name one of {', '.join(col['qualified'])}")
    return 0


def cmd_components(args) -> int:
    reg = _registry()
    rows = []
    for c in reg.components(args.kind):
        rows.append({"kind": c.kind, "name": c.name, "summary": c.summary, "distribution": c.distribution,
                     "plugin": c.plugin, "version": c.version, "devices": list(c.devices),
                     "dtypes": list(c.dtypes), "requires": list(c.requires), **_signature(reg, c)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = [max([len(row[key]) for row in rows] + [least]) for key, least in
              (("kind", 14), ("name", 18), ("distribution", 24))]
    for row in rows:
        print(f"{row['kind']:<{widths[0]}} {row['name']:<{widths[1]}} {row['distribution']:<{widths[2]}} "
              f"{row['summary']}")
        extra = []
        if row.get("accepts_constraint"):
            extra.append("accepts a constraint")
        if row["requires"]:
            extra.append("requires " + ", ".join(row["requires"]))
        if extra:
            print(f"{'':<16}({'; '.join(extra)})")
        if row.get("error"):
            print(f"{'':<16}error: {row['error']}")
        for p in row.get("parameters") or []:
            shown = json.dumps(p.get("default"), ensure_ascii=False)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."  # --json has it whole
            default = "required" if p["required"] else f"= {shown}"
            doc = f"  {p['doc']}" if p.get("doc") else ""
            print(f"{'':<16}{p['name']}: {p['type']} {default}{doc}")
    return 0


def _print_generation(prompt: str, gen, seconds: float) -> None:
    print(f"prompt:     {prompt!r}")
    print(f"completion: {gen.text!r}")
    rate = len(gen.ids) / seconds if seconds > 0 else float("inf")
    counters = ", ".join(f"{k}={v}" for k, v in gen.counters.items())
    print(f"({len(gen.ids)} tokens in {seconds:.2f} s, {rate:.1f} tok/s; finish={gen.finish_reason}; "
          f"log_weight={gen.log_weight:.4g}{_weight_note(gen)}; {counters})")


def _weight_note(gen) -> str:
    """Why a weight is -inf: a rejected sample and a truncated one are not the same."""
    if gen.finish_reason == "rejected":
        return " (rejected: the constraint allowed no continuation)"
    if gen.prefix_log_weight is not None:
        return (f" (truncated before an accepted end; weight so far {gen.prefix_log_weight:.4g}, "
                "prefix constraint only)")
    return ""


def cmd_run(args) -> int:
    spec = PipelineSpec.from_toml(args.pipeline)
    pipeline = _registry().build_pipeline(spec)
    for report in pipeline.reports:
        print(report.render())
    prompt = args.prompt or spec.generate.get("prompt")
    if prompt and (args.allow_special or spec.generate.get("allow_special", False)):
        prompt = TrustedText(prompt)
    if pipeline.decoder is not None and prompt:
        start = time.perf_counter()
        gen = pipeline.generate(prompt, max_new_tokens=args.max_new_tokens)
        _print_generation(prompt, gen, time.perf_counter() - start)
    if pipeline.evaluation is not None:
        from tokensmith.adapters.report import to_terminal

        record = pipeline.components["evaluation"]
        with blame(record.qualname, record.distribution, "running the evaluation"):
            result = pipeline.evaluation.run(pipeline)
        to_terminal(_as_report(result, record, _registry(), pipeline.runtime, spec.model))
    return 0


def cmd_train(args) -> int:
    from tokensmith.adapters.training import cmd_train as train

    return train(args)


def cmd_generate(args) -> int:
    reg = _registry()
    constraints = [_component(c, "--constraint") for c in args.constraint or []]
    spec = PipelineSpec(
        model=args.model, decoder={"type": args.decoder or "greedy", **_params(args.param)},
        stages=[_component(s, "--stage") for s in args.stage or []],
        constraint=(None if not constraints else constraints[0] if len(constraints) == 1
                    else {args.combine: constraints}),
        runtime={"device": args.device, "dtype": args.dtype, "seed": args.seed})
    pipeline = reg.build_pipeline(spec)
    start = time.perf_counter()
    prompt = TrustedText(args.prompt) if args.allow_special else args.prompt
    gen = pipeline.generate(prompt, max_new_tokens=args.max_new_tokens)
    _print_generation(args.prompt, gen, time.perf_counter() - start)
    return 0


def cmd_demo(args) -> int:
    from tokensmith.core.pipeline import BuildContext

    reg = _registry()
    demos = reg.components("demo")
    if args.only:
        demos = [reg.get("demo", name) for name in args.only]
    print(f"tokensmith demo on {args.model!r}: {len(demos)} section(s) from the installed plugins "
          f"({', '.join(d.name for d in demos) or 'none'})")
    start = time.perf_counter()
    spec = PipelineSpec(model=args.model, runtime={"device": args.device, "dtype": args.dtype})
    pipeline = reg.build_pipeline(spec)
    print(f"loaded {args.model} in {time.perf_counter() - start:.1f} s "
          f"({sum(p.numel() for p in pipeline.model.parameters()) / 1e6:.1f} M parameters, "
          f"vocabulary {pipeline.tokenizer.vocab_size})\n")
    ctx = BuildContext(runtime=pipeline.runtime, model=pipeline.model, tokenizer=pipeline.tokenizer,
                       lm=pipeline.lm, source=pipeline.spec.model, registry=reg)
    reports = {}
    for record in demos:
        print(f"== {record.name} ({record.distribution}): {record.summary}")
        demo = reg.build("demo", f"{record.distribution}:{record.name}", ctx)
        section_start = time.perf_counter()
        with blame(record.qualname, record.distribution, "the demo"):
            result = demo.run(pipeline, sys.stdout)
        reports[record.name] = _as_report(result, record, reg, pipeline.runtime, spec.model)
        print(f"-- {record.name} done in {time.perf_counter() - section_start:.1f} s\n")
    if args.out:
        from tokensmith.adapters.report import write_all

        for report in reports.values():
            write_all(report, args.out)
        print(f"reports written to {args.out}/ ({', '.join(f'{r.name}.json' for r in reports.values())})")
    if args.json:
        from tokensmith.adapters.artifacts import atomic_write_text

        atomic_write_text(args.json, json.dumps({name: r.to_dict() for name, r in reports.items()}, indent=2,
                                                ensure_ascii=False, allow_nan=False) + "\n")
        print(f"results written to {args.json}")
    return 0


# -- eval and bench: registered measurements that return a Report -------------------

def _listing(reg, kind: str) -> str:
    records = reg.components(kind)
    if not records:
        return f"no {kind} is installed (a plugin registers one with tokensmith_register_{kind}s)"
    width = max(len(r.name) for r in records)
    return "\n".join([f"installed {kind}s:"] + [f"  {r.name:<{width}}  {r.summary}  ({r.distribution})"
                                                for r in records])


def _as_report(result: Any, record, reg, runtime: Any = None, model: Any = None):
    """What a demo, evaluation or benchmark returned, as a Report named after its component
    and with the provenance of this run filled in where the component left it empty. A demo
    of the older contract returns a mapping: its numbers become metrics (with a warning)."""
    import warnings

    import attrs

    from tokensmith.core.errors import ComponentError
    from tokensmith.core.report import Provenance, Report

    if isinstance(result, Report):
        report = result
    elif isinstance(result, Mapping):
        warnings.warn(f"{record.kind} {record.name!r} ({record.distribution}) returned a mapping; "
                      "it should return a tokensmith.Report", DeprecationWarning, stacklevel=2)
        metrics, left_out = _flat_numbers(result)
        notes = (f"returned a mapping; left out (not numbers): {', '.join(left_out)}",) if left_out else ()
        report = Report(name=record.name, metrics=metrics, notes=notes)
    else:
        raise ComponentError(f"{record.kind} {record.name!r} returned {type(result).__name__}, not a "
                             "tokensmith.Report", component=record.qualname, plugin=record.distribution,
                             hint=f"a bug in {record.distribution}: run() must return a tokensmith.Report")
    here = Provenance.collect(registry=reg, runtime=runtime, model=model)
    mine = report.provenance
    provenance = Provenance(plugins={**here.plugins, **mine.plugins}, model=mine.model or here.model,
                            runtime=mine.runtime or here.runtime,
                            seed=mine.seed if mine.seed is not None else here.seed,
                            created=mine.created or here.created, command=mine.command or here.command,
                            extra={**here.extra, **mine.extra})
    return attrs.evolve(report, name=record.name, provenance=provenance)


def _flat_numbers(mapping: Mapping, prefix: str = "") -> tuple[dict[str, float], list[str]]:
    import math

    metrics: dict[str, float] = {}
    left_out: list[str] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            more, rest = _flat_numbers(value, f"{name}.")
            metrics.update(more)
            left_out += rest
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            metrics[name] = value
        else:
            left_out.append(name)
    return metrics, left_out


def _emit(report, args, folder: str | None = None, *, quiet_json: bool = False):
    """``<out>/<name>.json``, ``.md`` and (with series) ``.png`` (in ``<out>/<folder>/`` when
    given); the terminal table (or, with --json, the report's JSON) on stdout. Returns the
    JSON's path."""
    from pathlib import Path

    from tokensmith.adapters.report import to_terminal, write_all

    paths = write_all(report, Path(args.out) / folder if folder else args.out)
    written = f"written: {', '.join(str(p) for p in paths.values())}"
    if args.json:  # what was written (with its notes, e.g. a PNG left out), byte for byte
        if not quiet_json:
            sys.stdout.write(paths["json"].read_text(encoding="utf-8"))
        print(written, file=sys.stderr)
    else:
        to_terminal(report)
        print(written)
    return paths["json"]


def _tokenizer_label(raw: str, value: Any) -> str:
    """How a --tokenizer is named in reports: the name or source as given; a file or folder by
    its folder (``.../smollm2/tokenizer.json`` -> ``smollm2``) or stem; a JSON table by its path
    or type."""
    from pathlib import Path

    if isinstance(value, dict):
        value = str(value.get("path") or value.get("type") or raw)
    path = Path(value)
    if len(path.parts) > 1 or path.suffix == ".json":
        if path.name == "tokenizer.json":
            path = path.parent
        return path.stem or value
    return value


def _load_tokenizer(raw: str, reg, ctx):
    """One --tokenizer: a JSON component table or a registered tokenizer name (built by the
    registry), a tokenizer.json file or a folder holding one, or a model source (``smollm2``,
    ``minilm``...: the model's own tokenizer, without its weights where the source allows)."""
    from pathlib import Path

    from tokensmith.adapters.hf_tokenizer import HFTokenizer
    from tokensmith.adapters.models import source_tokenizer
    from tokensmith.core.pipeline import ModelSource

    value = _component(raw, "--tokenizer")
    label = _tokenizer_label(raw, value)
    names = {n for r in reg.components("tokenizer") for n in (r.name, *r.qualified_names)}
    if isinstance(value, dict) or value in names:
        return label, reg.build("tokenizer", value, ctx)
    path = Path(value).expanduser()
    if path.is_file() and path.suffix == ".json":
        return label, HFTokenizer.from_file(path, name=label)
    tokenizer = source_tokenizer(value)
    if tokenizer is not None:
        return label, tokenizer
    if reg.describe_model(ModelSource(value)) is not None:  # a plugin's source: its model's tokenizer
        return label, reg.load_model(ModelSource(value), ctx.runtime)[1]
    registered = ", ".join(sorted(r.name for r in reg.components("tokenizer"))) or "none"
    raise ConfigError(
        f"--tokenizer {raw!r} is not a registered tokenizer, a tokenizer.json file or folder, or a model "
        "source", component="cli", hint=f"registered tokenizers: {registered}; "
        "model sources: smollm2, minilm, tiny-llama, tiny-gpt2, a model folder; or a JSON table such as "
        "'{\"type\": \"hf-file\", \"path\": \"tokenizer.json\"}'")


def _eval_tokenizers(args, reg, record, targets) -> tuple[dict[str, Any], Any]:
    """The --tokenizer options as label -> tokenizer (labels made unique with #2, #3...),
    refused before anything loads when the evaluation needs a model."""
    from tokensmith.core.errors import IncompatibleComponentsError
    from tokensmith.core.pipeline import BuildContext
    from tokensmith.core.runtime import Runtime

    if "tokenizer" not in targets and "tokenizers" not in targets:
        raise IncompatibleComponentsError(
            f"evaluation {record.name!r} scores a pipeline (it needs a model), not a tokenizer alone",
            component=record.qualname, plugin=record.distribution,
            hint="give --pipeline TOML or --model SOURCE instead of --tokenizer")
    ctx = BuildContext(runtime=Runtime.from_config({"device": args.device, "dtype": args.dtype,
                                                    "seed": args.seed}), registry=reg)
    tokenizers: dict[str, Any] = {}
    for raw in args.tokenizer:
        label, tokenizer = _load_tokenizer(raw, reg, ctx)
        unique, n = label, 1
        while unique in tokenizers:
            n += 1
            unique = f"{label}#{n}"
        tokenizers[unique] = tokenizer
    return tokenizers, ctx


def _eval_target(args, reg):
    from tokensmith.core.pipeline import BuildContext

    runtime = {"device": args.device, "dtype": args.dtype, "seed": args.seed}
    if args.pipeline is not None:
        spec = PipelineSpec.from_toml(args.pipeline)
    else:
        spec = PipelineSpec(model=args.model, runtime=runtime)
    pipeline = reg.build_pipeline(spec)
    ctx = BuildContext(runtime=pipeline.runtime, model=pipeline.model, tokenizer=pipeline.tokenizer,
                       model_tokenizer=pipeline.tokenizer, lm=pipeline.lm, source=spec.model, registry=reg)
    return pipeline, ctx, spec.model


def _checked(reg, kind: str, args):
    """The record of ``args.name`` with its -p parameters checked, before anything loads."""
    from tokensmith.core.errors import ValidationError

    record = reg.get(kind, args.name)
    params = _params(args.param)
    _, problems = reg.check_params(record, params)
    if problems:
        raise problems[0] if len(problems) == 1 else ValidationError(problems)
    return record, {"type": f"{record.distribution}:{record.name}", **params}


def cmd_eval(args) -> int:
    reg = _registry()
    if not args.name:
        print(_listing(reg, "evaluation"))
        return 0
    record, ref = _checked(reg, "evaluation", args)
    targets = getattr(reg.factory(record)[0], "targets", ("pipeline",))
    if not args.tokenizer:
        target, ctx, model = _eval_target(args, reg)
        runs = {None: target}
    else:
        tokenizers, ctx = _eval_tokenizers(args, reg, record, targets)
        model = None
        if "tokenizers" in targets:  # one report comparing them all
            runs = {None: tokenizers}
        elif len(tokenizers) == 1:
            runs = {None: next(iter(tokenizers.values()))}
        else:  # a single-tokenizer evaluation: once per tokenizer, each in <out>/<label>/
            runs = dict(tokenizers)
    evaluation = reg.build("evaluation", ref, ctx)
    written = {}
    for label, target in runs.items():
        if label is not None:
            print(f"== {record.name} on {label}", flush=True, file=sys.stderr if args.json else sys.stdout)
        with blame(record.qualname, record.distribution, "running the evaluation"):
            result = evaluation.run(target, quick=args.quick)
        report = _as_report(result, record, reg, ctx.runtime, model)
        written[label] = _emit(report, args, None if label is None else _safe_folder(label),
                               quiet_json=label is not None)
    if args.json and None not in written:  # several runs: one JSON object, label -> report
        reports = {label: json.loads(path.read_text(encoding="utf-8")) for label, path in written.items()}
        sys.stdout.write(json.dumps(reports, indent=2, ensure_ascii=False) + "\n")
    return 0


def _safe_folder(label: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._+-]", "_", label).strip(".") or "tokenizer"


def cmd_bench(args) -> int:
    reg = _registry()
    if not args.name:
        print(_listing(reg, "benchmark"))
        return 0
    record, ref = _checked(reg, "benchmark", args)
    benchmark = reg.build("benchmark", ref)
    with blame(record.qualname, record.distribution, "running the benchmark"):
        result = benchmark.run(quick=args.quick)
    _emit(_as_report(result, record, reg), args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokensmith", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("plugins", help="installed plugins, versions, hooks, components, failures, collisions")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_plugins)
    s = sub.add_parser("components", help="registered components with their parameters (types, defaults)")
    s.add_argument("kind", nargs="?", choices=KINDS, help="only components of this kind")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_components)
    s = sub.add_parser("run", help="build a pipeline from TOML and run it")
    s.add_argument("pipeline", help="a pipeline TOML file (see examples/)")
    s.add_argument("--prompt", help="overrides [generate] prompt")
    s.add_argument("--max-new-tokens", type=int, default=None, help="overrides [generate] max_new_tokens")
    s.add_argument("--allow-special", action="store_true", help=ALLOW_SPECIAL)
    s.set_defaults(func=cmd_run)
    s = sub.add_parser("train", help="train on a recipe TOML (the same file under torchrun)",
                       description="Run a training recipe (docs/training.md) on transformers' Trainer. Under "
                       "`torchrun --nproc_per_node N -m tokensmith train RECIPE.toml` each rank runs it.")
    s.add_argument("recipe", help="a recipe TOML file (see examples/tiny-recipe.toml)")
    s.add_argument("--output-dir", metavar="DIR", help="overrides [train] output_dir")
    s.add_argument("--resume", metavar="PATH|latest",
                   help="continue from a checkpoint directory, or the newest one in the output dir")
    s.add_argument("--max-steps", type=int, metavar="N", help="overrides [train] steps")
    s.set_defaults(func=cmd_train)
    for name, func, helptext in (("generate", cmd_generate, "generate text with one decoder"),
                                 ("demo", cmd_demo, "show what each installed plugin does vs the baseline")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--model", default="smollm2", help="model source (default: smollm2)")
        s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
        s.add_argument("--dtype", default="auto", help="auto, fp32, fp64, fp16, bf16")
        s.set_defaults(func=func)
        if name == "generate":
            s.add_argument("prompt")
            s.add_argument("--decoder", help="a registered decoder (default: greedy, from "
                           "tokensmith-baselines; without it, validation names the installed decoders)")
            s.add_argument("--param", action="append", metavar="KEY=VALUE",
                           help="a decoder parameter (VALUE is JSON, else a string); repeatable")
            s.add_argument("--constraint", action="append", metavar="NAME|JSON",
                           help="a constraint: a registered name or a JSON table such as "
                           "'{\"type\": \"regex\", \"pattern\": \"[0-9]+\"}'; repeatable")
            s.add_argument("--combine", choices=("all", "any"), default="all",
                           help="how several --constraint combine (default: all)")
            s.add_argument("--stage", action="append", metavar="NAME|JSON",
                           help="a tokenizer stage applied to the prompt; repeatable, in order")
            s.add_argument("--max-new-tokens", type=int, default=32)
            s.add_argument("--allow-special", action="store_true", help=ALLOW_SPECIAL)
            s.add_argument("--seed", type=int, default=0, help="the runtime seed (default 0)")
        else:
            s.add_argument("--only", action="append", metavar="NAME",
                           help="run only this section; repeatable")
            s.add_argument("--json", metavar="PATH", help="also write the sections' reports to PATH (JSON)")
            s.add_argument("--out", metavar="DIR", help="also write each section's report to DIR "
                           "(<name>.json, .md, .png)")
    for name, func, kind in (("eval", cmd_eval, "evaluation"), ("bench", cmd_bench, "benchmark")):
        s = sub.add_parser(name, help=f"run a registered {kind}: JSON + PNG + a terminal table")
        s.add_argument("name", nargs="?", metavar="NAME", help=f"a registered {kind} (without it: the "
                       f"installed {kind}s)")
        s.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                       help=f"a parameter of the {kind} (VALUE is JSON, else a string); repeatable")
        s.add_argument("--out", default="reports", metavar="DIR",
                       help="where <name>.json, .md and .png go (default: ./reports)")
        s.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
        s.add_argument("--json", action="store_true", help="print the report's JSON instead of the table")
        s.set_defaults(func=func)
        if name == "eval":
            target = s.add_mutually_exclusive_group()
            target.add_argument("--pipeline", metavar="TOML", help="score the pipeline this file builds")
            target.add_argument("--tokenizer", metavar="NAME|PATH|JSON", action="append",
                                help="score a tokenizer alone (evaluations of tokenizers): a model source "
                                "(smollm2, minilm: its own tokenizer, without the weights), a tokenizer.json "
                                "or its folder, a registered tokenizer, or a JSON table such as "
                                "'{\"type\": \"hf-file\", \"path\": \"tokenizer.json\"}'; repeatable: an "
                                "evaluation of several tokenizers compares them in one report, any other "
                                "runs once per tokenizer (into <out>/<label>/)")
            target.add_argument("--model", default="smollm2",
                                help="score a pipeline of this model source (default: smollm2)")
            s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
            s.add_argument("--dtype", default="auto", help="auto, fp32, fp64, fp16, bf16")
            s.add_argument("--seed", type=int, default=0, help="the runtime seed (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, and keep Python's exit flush quiet too
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except TokensmithError as exc:
        if args.debug:
            raise
        print(f"tokensmith: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tokensmith: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback behind --debug
        if args.debug:
            raise
        print(f"tokensmith: internal error: {type(exc).__name__}: {exc} (run with --debug for the "
              "traceback and report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
