"""Run benchmarks: every ``bench/<name>/run.py`` (or those given with --only).

Each benchmark module has ``main(out_dir: Path, quick: bool) -> dict`` and writes
``<out_dir>/<name>.json`` and ``<out_dir>/<name>.png``. Ratios are always
against a baseline measured in the same run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(HERE.glob("*/run.py"))}


def main(argv: list[str] | None = None) -> int:
    benches = discover()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(benches))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.only or sorted(benches):
        spec = importlib.util.spec_from_file_location(f"bench_{name.replace('-', '_')}", benches[name])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        summary[name] = module.main(args.out, args.quick)
        print(f"-- {name}: {time.perf_counter() - start:.1f} s -> {args.out / name}.json", flush=True)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
