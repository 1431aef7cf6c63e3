"""Memory flat in corpus size: every installed tokenizer evaluation (kind ``evaluation`` whose
``targets`` include ``"tokenizer"``) run on SmolLM2's tokenizer at growing ``sample`` sizes, with
its peak Python memory (``tracemalloc``: every allocation the interpreter and numpy make; the
Rust side of ``tokenizers`` is not traced) and its time.

An evaluation that streams its corpus keeps the same peak whatever the sample; one that holds
the corpus grows with it. ``peak_growth`` is the peak at the largest sample over the peak at
the smallest. Composite evaluations (``"tokenizers"`` in ``targets``, e.g. tokenizer-report)
run the others and are left out. Nothing here asserts a time or a size.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
import tracemalloc
from pathlib import Path

SIZES = (1000, 4000, 16000)
QUICK_SIZES = (100, 400)
#: parameters that keep a measurement about the corpus: tokenizer-metrics' parity reads a fixed
#: pair of UDHR translations (the same at every size), left out here
EXTRA = {"tokenizer-metrics": {"parallel": None}}
#: evaluations measured by the process's peak resident memory instead (tokensmith.peak_rss, reset
#: before each run): linguistic-integrity loads zemberek's Turkish analyser (millions of small
#: objects) on every run, which under tracemalloc took over 10 minutes on our shared 2-core machine
RSS = frozenset({"linguistic-integrity"})
#: evaluations whose runs are training, not measuring: left out, with the reason in the report
LEAVE_OUT = {"kl3m": "trains three tokenizers per run (16 min at sample 1,000 on our shared 2-core machine)"}
#: evaluations whose sample counts something other than lines or texts: their own sizes
#: (charbench-covariates: words per task and word length, 4 tasks x 7 lengths per unit;
#: uuid-chars-per-token: generated texts per kind and length, up to 32k characters each)
OWN_SIZES = {"charbench-covariates": ((8, 32, 128), (4, 16)), "uuid-chars-per-token": ((1, 2, 4), (1, 2))}
#: TOKENSMITH_STREAMING_ONLY=a,b measures only these evaluations
ONLY = "TOKENSMITH_STREAMING_ONLY"


def _measure_rss(evaluation, tokenizer) -> tuple[float, float]:
    """(peak resident MiB above the start, seconds) of one run."""
    from tokensmith import peak_rss

    start = time.perf_counter()
    with peak_rss() as rss, contextlib.redirect_stderr(io.StringIO()):
        evaluation.run(tokenizer)
    if rss.increase is None:  # no /proc and no getrusage: nothing to report
        raise RuntimeError("peak RSS is not available on this platform")
    return rss.increase / 2**20, time.perf_counter() - start


def _measure(evaluation, tokenizer) -> tuple[float, float]:
    """(peak MiB, seconds) of one run; the peak is reset just before it."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            evaluation.run(tokenizer)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20, seconds


def main(out_dir: Path, quick: bool = False):
    from tokensmith import Provenance, Registry, Report, Series, Table, TokensmithError
    from tokensmith.adapters.models import source_tokenizer

    registry = Registry.from_environment()
    tokenizer = source_tokenizer("smollm2")
    sizes = QUICK_SIZES if quick else SIZES
    only = {n.strip() for n in os.environ.get(ONLY, "").split(",") if n.strip()}
    rows, series, notes, metrics = [], [], [], {}
    for record in registry.components("evaluation"):
        targets = getattr(registry.factory(record)[0], "targets", ("pipeline",))
        if "tokenizer" not in targets:
            continue
        if "tokenizers" in targets:
            notes.append(f"{record.name}: a composition of the others, left out")
            continue
        if record.name in LEAVE_OUT:
            notes.append(f"{record.name}: left out, it {LEAVE_OUT[record.name]}")
            continue
        if only and record.name not in only:
            notes.append(f"{record.name}: not measured in this run ({ONLY}={','.join(sorted(only))})")
            continue
        points = []
        own = OWN_SIZES.get(record.name)
        record_sizes = (own[1] if quick else own[0]) if own else sizes
        # one untraced run first, so that imports and caches filled once per process (numpy, a
        # dataset's index) do not count as the smallest sample's memory
        warm = {"type": f"{record.distribution}:{record.name}", "sample": record_sizes[0],
                **EXTRA.get(record.name, {})}
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                registry.build("evaluation", warm).run(tokenizer)
        except TokensmithError:
            pass  # the measured run below reports it
        for n in record_sizes:
            spec = {"type": f"{record.distribution}:{record.name}", "sample": n, **EXTRA.get(record.name, {})}
            try:
                measure = _measure_rss if record.name in RSS else _measure
                peak, seconds = measure(registry.build("evaluation", spec), tokenizer)
            except TokensmithError as exc:
                notes.append(f"{record.name} at sample {n}: not measured ({exc.message})")
                continue
            points.append((n, peak, seconds))
            rows.append((record.name, "peak RSS increase" if record.name in RSS else "tracemalloc peak",
                         n, peak, seconds))
            metrics[f"{record.name}.peak_mib@{n}"] = peak
            metrics[f"{record.name}.seconds@{n}"] = seconds
            print(f"  {record.name} sample {n}: peak {peak:.2f} MiB, {seconds:.2f} s", flush=True)
        if len(points) >= 2:
            metrics[f"{record.name}.peak_growth"] = points[-1][1] / points[0][1]
            xs = [p[0] for p in points]
            series.append(Series(f"{record.name} peak", xs, [p[1] for p in points], x_label="sample",
                                 y_label="peak Python memory (MiB)", plot="line", group="peak memory",
                                 log_x=True))
            series.append(Series(f"{record.name} time", xs, [p[2] for p in points], x_label="sample",
                                 y_label="seconds", plot="line", group="time", log_x=True))
    if not rows:
        print("streaming: no tokenizer evaluation could be measured")
        return None
    notes.append("SmolLM2's tokenizer; each evaluation's own corpus and defaults but sample; "
                 "tracemalloc peaks (Python and numpy allocations, not the Rust tokenizer's), except "
                 f"{', '.join(sorted(RSS))}: the increase of the process's peak RSS; "
                 "tokenizer-metrics without its fixed-size UDHR parity pair")
    return Report(name="streaming", metrics=metrics,
                  tables=(Table("peak memory by sample", ("evaluation", "measured by", "sample", "peak MiB",
                                                          "seconds"),
                                tuple(rows)),),
                  series=tuple(series), notes=tuple(notes),
                  provenance=Provenance.collect(registry=registry, model="smollm2"))
