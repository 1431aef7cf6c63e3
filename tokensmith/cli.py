"""The ``tokensmith`` command line: plugins, components, run, generate, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from tokensmith.core.errors import TokensmithError
from tokensmith.core.pipeline import PipelineSpec
from tokensmith.core.records import KINDS


def _registry():
    from tokensmith import default_registry

    return default_registry()


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _params(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise TokensmithError(f"--param {pair!r} is not KEY=VALUE", component="cli")
        out[key.strip()] = _parse_value(value)
    return out


def cmd_plugins(args) -> int:
    reg = _registry()
    rows = []
    for name, info in sorted(reg.plugins.items()):
        comps = [c for c in reg.components() if c.plugin == name]
        rows.append({"name": name, "distribution": info.distribution, "version": info.version,
                     "module": info.module, "hooks": reg.hooks_of(name),
                     "components": [{"kind": c.kind, "name": c.name, "summary": c.summary}
                                    for c in comps]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['distribution']} {row['version']})")
        print(f"  hooks: {', '.join(row['hooks']) or '-'}")
        for c in row["components"]:
            print(f"  {c['kind']:<14} {c['name']:<16} {c['summary']}")
    return 0


def cmd_components(args) -> int:
    reg = _registry()
    comps = reg.components(args.kind)
    if args.json:
        print(json.dumps([{"kind": c.kind, "name": c.name, "summary": c.summary,
                           "distribution": c.distribution, "version": c.version,
                           "devices": list(c.devices), "dtypes": list(c.dtypes)} for c in comps], indent=2))
        return 0
    for c in comps:
        print(f"{c.kind:<14} {c.name:<18} {c.distribution:<24} {c.summary}")
    return 0


def _print_generation(prompt: str, gen, seconds: float) -> None:
    print(f"prompt:     {prompt!r}")
    print(f"completion: {gen.text!r}")
    rate = len(gen.ids) / seconds if seconds > 0 else float("inf")
    counters = ", ".join(f"{k}={v}" for k, v in gen.counters.items())
    print(f"({len(gen.ids)} tokens in {seconds:.2f} s, {rate:.1f} tok/s; finish={gen.finish_reason}; "
          f"log_weight={gen.log_weight:.4g}; {counters})")


def cmd_run(args) -> int:
    spec = PipelineSpec.from_toml(args.pipeline)
    pipeline = _registry().build_pipeline(spec)
    for report in pipeline.reports:
        print(report.render())
    prompt = args.prompt or spec.generate.get("prompt")
    if pipeline.decoder is not None and prompt:
        start = time.perf_counter()
        gen = pipeline.generate(prompt, max_new_tokens=args.max_new_tokens)
        _print_generation(prompt, gen, time.perf_counter() - start)
    if pipeline.evaluation is not None:
        report = pipeline.evaluation.run(pipeline)
        print(json.dumps({"evaluation": report.name, "metrics": dict(report.metrics)}, indent=2))
    return 0


def cmd_generate(args) -> int:
    spec = PipelineSpec(model=args.model, decoder={"type": args.decoder, **_params(args.param)},
                        runtime={"device": args.device, "dtype": args.dtype, "seed": args.seed})
    pipeline = _registry().build_pipeline(spec)
    start = time.perf_counter()
    gen = pipeline.generate(args.prompt, max_new_tokens=args.max_new_tokens)
    _print_generation(args.prompt, gen, time.perf_counter() - start)
    return 0


def cmd_demo(args) -> int:
    reg = _registry()
    demos = reg.components("demo")
    if args.only:
        demos = [reg.get("demo", name) for name in args.only]
    print(f"tokensmith demo on {args.model!r}: {len(demos)} section(s) from the installed plugins "
          f"({', '.join(d.name for d in demos) or 'none'})")
    start = time.perf_counter()
    spec = PipelineSpec(model=args.model, decoder="greedy",
                        runtime={"device": args.device, "dtype": args.dtype})
    pipeline = reg.build_pipeline(spec)
    print(f"loaded {args.model} in {time.perf_counter() - start:.1f} s "
          f"({sum(p.numel() for p in pipeline.model.parameters()) / 1e6:.1f} M parameters, "
          f"vocabulary {pipeline.tokenizer.vocab_size})\n")
    results = {}
    for record in demos:
        print(f"== {record.name} ({record.distribution}): {record.summary}")
        demo = reg.build("demo", record.name, _context(pipeline))
        section_start = time.perf_counter()
        results[record.name] = demo.run(pipeline, sys.stdout)
        print(f"-- {record.name} done in {time.perf_counter() - section_start:.1f} s\n")
    if args.json:
        from tokensmith.adapters.artifacts import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=2, default=str))
        print(f"results written to {args.json}")
    return 0


def _context(pipeline):
    from tokensmith.core.pipeline import BuildContext

    return BuildContext(runtime=pipeline.runtime, model=pipeline.model, tokenizer=pipeline.tokenizer,
                        lm=pipeline.lm, source=pipeline.spec.model)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokensmith", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("plugins", help="installed plugins, versions, hooks and components")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_plugins)
    s = sub.add_parser("components", help="registered components, optionally of one kind")
    s.add_argument("kind", nargs="?", choices=KINDS)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_components)
    s = sub.add_parser("run", help="build a pipeline from TOML and run it")
    s.add_argument("pipeline")
    s.add_argument("--prompt")
    s.add_argument("--max-new-tokens", type=int, default=None)
    s.set_defaults(func=cmd_run)
    for name, func, helptext in (("generate", cmd_generate, "generate text with one decoder"),
                                 ("demo", cmd_demo, "show what each installed plugin does vs the baseline")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--model", default="smollm2")
        s.add_argument("--device", default="auto")
        s.add_argument("--dtype", default="auto")
        s.set_defaults(func=func)
        if name == "generate":
            s.add_argument("prompt")
            s.add_argument("--decoder", default="greedy")
            s.add_argument("--param", action="append", metavar="KEY=VALUE")
            s.add_argument("--max-new-tokens", type=int, default=32)
            s.add_argument("--seed", type=int, default=0)
        else:
            s.add_argument("--only", action="append", metavar="NAME")
            s.add_argument("--json", metavar="PATH")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TokensmithError as exc:
        print(f"tokensmith: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
