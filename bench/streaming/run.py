"""Memory flat in corpus size: every installed tokenizer evaluation (kind ``evaluation`` whose
``targets`` include ``"tokenizer"``) run on SmolLM2's tokenizer at growing ``sample`` sizes, with
its peak Python memory (``tracemalloc``: every allocation the interpreter and numpy make; the
Rust side of ``tokenizers`` is not traced) and its time; the evaluations that need the model
(``PIPELINE``) on a SmolLM2 pipeline built once, by the increase of the process's peak RSS
(torch's tensors are not Python allocations).

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
LEAVE_OUT: dict[str, str] = {}
#: kl3m trains its tokenizers before it measures (16 min at its defaults here): measured with small
#: ones (4k BPEs and one 4k character tokenizer on 400 training documents, trained by the untraced
#: warm-up run and then loaded from its cache) and 200 OCR edits, so that what grows with ``sample``
#: is the held-out legal text it streams
EXTRA["kl3m"] = {"vocab_size": 4096, "char_sizes": [4096], "train_sample": 400, "edits": 200}
#: evaluations that need the model, on a SmolLM2 pipeline, with the parameters that keep a run short
#: (dynamic-tokenization: two merge counts, no prefill): measured by peak RSS
PIPELINE = {"dynamic-tokenization": {"merges": [0, 32], "prefill": False, "batch_size": 8,
                                     "target_reductions": [0.05]}}
#: evaluations whose sample counts something other than lines or texts: their own sizes
#: (charbench-covariates: words per task and word length, 4 tasks x 7 lengths per unit;
#: uuid-chars-per-token: generated texts per kind and length, up to 32k characters each)
OWN_SIZES = {"charbench-covariates": ((8, 32, 128), (4, 16)), "uuid-chars-per-token": ((1, 2, 4), (1, 2)),
             # held-out licence documents (the eval split holds a few hundred)
             "kl3m": ((20, 60, 180), (10, 20)),
             # passages of ~400 characters, each scored at every merge count
             "dynamic-tokenization": ((8, 24, 72), (4, 8))}
#: TOKENSMITH_STREAMING_ONLY=a,b measures only these evaluations; the other evaluations' rows are
#: carried over from the previous results in the output folder (each carried row says so)
ONLY = "TOKENSMITH_STREAMING_ONLY"


def _previous(out_dir: Path, measured: set[str]):
    """Rows, series and metrics of the previous ``streaming.json`` for the evaluations not in
    ``measured``, and a note naming when they were measured; empty when there is none."""
    from tokensmith import Report, TokensmithError

    path = out_dir / "streaming.json"
    if not path.is_file():
        return [], [], {}, []
    try:
        old = Report.from_json(path.read_bytes())
    except TokensmithError as exc:
        return [], [], {}, [f"previous results {path} not carried over: {exc.message}"]
    keep = lambda name: name not in measured  # noqa: E731
    rows = [tuple(r) for t in old.tables[:1] for r in t.rows if keep(r[0])]
    series = [s for s in old.series if keep(s.name.rsplit(" ", 1)[0])]
    metrics = {k: v for k, v in old.metrics.items() if keep(k.split(".", 1)[0])}
    names = sorted({r[0] for r in rows})
    when = old.provenance.created or "an earlier date"
    notes = [f"{', '.join(names)}: carried over from the run of {when} (not re-measured in this one)"
             ] if names else []
    return rows, series, metrics, notes


def _measure_rss(evaluation, target) -> tuple[float, float]:
    """(peak resident MiB above the start, seconds) of one run."""
    import gc

    from tokensmith import peak_rss

    gc.collect()
    start = time.perf_counter()
    with peak_rss() as rss, contextlib.redirect_stderr(io.StringIO()):
        evaluation.run(target)
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


def _pipeline(registry):
    """A SmolLM2 pipeline (fp32, CPU) and the build context evaluations get from ``tokensmith eval``."""
    from tokensmith import PipelineSpec
    from tokensmith.core.pipeline import BuildContext

    spec = PipelineSpec(model="smollm2", runtime={"device": "cpu", "dtype": "float32", "seed": 0})
    pipeline = registry.build_pipeline(spec)
    ctx = BuildContext(runtime=pipeline.runtime, model=pipeline.model, tokenizer=pipeline.tokenizer,
                       model_tokenizer=pipeline.tokenizer, lm=pipeline.lm, source=spec.model,
                       registry=registry)
    return pipeline, ctx


def main(out_dir: Path, quick: bool = False):
    from tokensmith import Provenance, Registry, Report, Series, Table, TokensmithError
    from tokensmith.adapters.models import source_tokenizer

    registry = Registry.from_environment()
    tokenizer = source_tokenizer("smollm2")
    pipeline = ctx = None  # the SmolLM2 pipeline, built at the first evaluation that needs it
    sizes = QUICK_SIZES if quick else SIZES
    only = {n.strip() for n in os.environ.get(ONLY, "").split(",") if n.strip()}
    rows, series, notes, metrics = [], [], [], {}
    for record in registry.components("evaluation"):
        targets = getattr(registry.factory(record)[0], "targets", ("pipeline",))
        if "tokenizer" not in targets and record.name not in PIPELINE:
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
        target, build_ctx = tokenizer, None
        if record.name in PIPELINE:
            if pipeline is None:
                pipeline, ctx = _pipeline(registry)
            target, build_ctx = pipeline, ctx
        extra = {**EXTRA.get(record.name, {}), **PIPELINE.get(record.name, {})}
        by_rss = record.name in RSS or record.name in PIPELINE
        # one untraced run first, so that imports and caches filled once per process (numpy, a
        # dataset's index, kl3m's trained tokenizers) do not count as the smallest sample's memory
        warm = {"type": f"{record.distribution}:{record.name}", "sample": record_sizes[0], **extra}
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                registry.build("evaluation", warm, build_ctx).run(target)
        except TokensmithError:
            pass  # the measured run below reports it
        for n in record_sizes:
            spec = {"type": f"{record.distribution}:{record.name}", "sample": n, **extra}
            try:
                measure = _measure_rss if by_rss else _measure
                peak, seconds = measure(registry.build("evaluation", spec, build_ctx), target)
            except TokensmithError as exc:
                notes.append(f"{record.name} at sample {n}: not measured ({exc.message})")
                continue
            points.append((n, peak, seconds))
            rows.append((record.name, "peak RSS increase" if by_rss else "tracemalloc peak",
                         n, peak, seconds))
            metrics[f"{record.name}.peak_mib@{n}"] = peak
            metrics[f"{record.name}.seconds@{n}"] = seconds
            print(f"  {record.name} sample {n}: peak {peak:.2f} MiB, {seconds:.2f} s", flush=True)
        if len(points) >= 2:
            metrics[f"{record.name}.peak_growth"] = points[-1][1] / points[0][1]
            xs = [p[0] for p in points]
            series.append(Series(f"{record.name} peak", xs, [p[1] for p in points], x_label="sample",
                                 y_label="peak memory (MiB)", plot="line", group="peak memory",
                                 log_x=True))
            series.append(Series(f"{record.name} time", xs, [p[2] for p in points], x_label="sample",
                                 y_label="seconds", plot="line", group="time", log_x=True))
    if not rows:
        print("streaming: no tokenizer evaluation could be measured")
        return None
    if only:
        old_rows, old_series, old_metrics, old_notes = _previous(out_dir, {r[0] for r in rows})
        rows += old_rows
        series += old_series
        metrics = {**old_metrics, **metrics}
        carried = {r[0] for r in old_rows}
        notes = [n for n in notes if not (f"({ONLY}=" in n and n.split(":", 1)[0] in carried)] + old_notes
    notes.append("SmolLM2's tokenizer (a SmolLM2 pipeline for "
                 f"{', '.join(sorted(PIPELINE))}); each evaluation's own corpus and defaults but sample "
                 "and the parameters in bench/streaming/run.py (EXTRA, PIPELINE); "
                 "tracemalloc peaks (Python and numpy allocations, not the Rust tokenizer's), except "
                 f"{', '.join(sorted(RSS | set(PIPELINE)))}: the increase of the process's peak RSS; "
                 "tokenizer-metrics without its fixed-size UDHR parity pair")
    return Report(name="streaming", metrics=metrics,
                  tables=(Table("peak memory by sample", ("evaluation", "measured by", "sample", "peak MiB",
                                                          "seconds"),
                                tuple(rows)),),
                  series=tuple(series), notes=tuple(notes),
                  provenance=Provenance.collect(registry=registry, model="smollm2"))
