"""Run benchmarks: the registered ones (``tokensmith bench NAME``: a plugin's own, e.g. awrs and
byteprob) and the folders here that are not a plugin's (``bench/<name>/run.py``: overhead,
peers, ...), all of them or those given with --only.

A registered benchmark returns a ``tokensmith.Report``; a folder's ``main(out_dir, quick)``
returns a Report, ``None`` (skipped: it printed why, and earlier results stay), or — the older
contract — a dict after writing its own files. Reports are written with ``tokensmith.write_all``
(``<out>/<name>.json``, ``.md``, ``.png``). Ratios are always against a baseline measured in
the same run; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def folders() -> dict[str, Path]:
    return {p.parent.name: p for p in sorted(HERE.glob("*/run.py"))}


def _run_folder(name: str, path: Path, out: Path, quick: bool):
    spec = importlib.util.spec_from_file_location(f"bench_{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(out, quick)


def main(argv: list[str] | None = None) -> int:
    from tokensmith import Registry, Report, to_terminal, write_all

    registry = Registry.from_environment()
    registered = {r.name: r for r in registry.components("benchmark")}
    local = {name: path for name, path in folders().items() if name not in registered}
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted({*registered, *local}))
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in args.only or sorted({*registered, *local}):
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        if name in registered:
            record = registered[name]
            result = registry.build("benchmark", f"{record.distribution}:{name}").run(quick=args.quick)
        else:
            result = _run_folder(name, local[name], args.out, args.quick)
        seconds = time.perf_counter() - start
        if isinstance(result, Report):
            paths = write_all(result, args.out)
            to_terminal(result)
            summary[name] = dict(result.metrics)
            print(f"-- {name}: {seconds:.1f} s -> {', '.join(str(p) for p in paths.values())}", flush=True)
        elif result is None:
            summary[name] = "skipped"
            print(f"-- {name}: skipped ({seconds:.1f} s); earlier results left as they are", flush=True)
        else:
            summary[name] = result
            print(f"-- {name}: {seconds:.1f} s -> {args.out / name}.json", flush=True)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
