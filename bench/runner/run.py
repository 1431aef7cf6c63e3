"""The recipe runner against the same training written directly on transformers' Trainer.

Same tiny Llama (random init, seed 0), same packed blocks of the tiny corpus, same steps,
batch size, learning rate, schedule and seed. The runner side is
``tokensmith.run_recipe`` (the composed token cross-entropy on the model's logits); the
baseline is ``Trainer(model, args, train_dataset, data_collator)`` on the model's own loss.
Both set ``config.use_cache = False`` (the usual training setting; with it on, the plain
Trainer would also fill a KV cache every step and the comparison would flatter the runner).

Measured, each side in a fresh process (so resident memory is comparable), the sides
alternating: seconds per optimizer step (median over the steps after the first, best of the
rounds), peak RSS of the process, and the training losses — which must be identical, or the
benchmark fails. In this process: the peak of live tensor bytes during a few steps of each
side (``torch.profiler`` memory events: every allocation, autograd's included).
Targets: step-time ratio <= 1.05, peak-memory ratios <= 1.05.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {"hidden_size": 64, "layers": 2, "heads": 4, "block": 64, "batch_size": 8, "lr": 1e-3}


def _blocks(block: int) -> list[list[int]]:
    from tokensmith.testing import TINY_CORPUS, tiny_tokenizer

    ids = list(tiny_tokenizer().encode(TINY_CORPUS * 12).ids)
    return [ids[i:i + block] for i in range(0, len(ids) - block + 1, block)]


def _model():
    from tokensmith.testing import tiny_llama, tiny_tokenizer

    model, _ = tiny_llama(tiny_tokenizer(), hidden_size=SETTINGS["hidden_size"], layers=SETTINGS["layers"],
                          heads=SETTINGS["heads"], context=SETTINGS["block"], seed=0)
    model.config.use_cache = False
    return model.train()


class _StepTimes:
    """A TrainerCallback (made on first use: transformers is imported lazily) timing each step."""

    @staticmethod
    def make(times: list[float]):
        from transformers import TrainerCallback

        class StepTimes(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                self.start = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                times.append(time.perf_counter() - self.start)

        return StepTimes()


def _train(side: str, steps: int, out: str, callbacks=()) -> list[float]:
    """Train one side; its per-step losses."""
    import torch

    blocks = _blocks(SETTINGS["block"])
    model = _model()
    if side == "runner":
        from tokensmith import run_recipe

        arguments = {"steps": steps, "batch_size": SETTINGS["batch_size"], "lr": SETTINGS["lr"], "seed": 0,
                     "progress": "off", "save_final": False}
        result = run_recipe(model=model, train_data=[{"input_ids": b} for b in blocks], callbacks=callbacks,
                            arguments=arguments, data={"max_length": SETTINGS["block"]}, output_dir=out)
        return [loss for _, loss in result.losses]
    from transformers import PrinterCallback, Trainer, TrainingArguments

    def collate(rows):
        ids = torch.tensor([r["input_ids"] for r in rows])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

    args = TrainingArguments(output_dir=out, max_steps=steps, learning_rate=SETTINGS["lr"], seed=0,
                             per_device_train_batch_size=SETTINGS["batch_size"], logging_steps=1,
                             save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True,
                             dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": b} for b in blocks],
                      data_collator=collate, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)  # a line per step on stdout, outside the timed span anyway
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def _worker(side: str, steps: int) -> dict:
    import torch

    torch.set_num_threads(_threads())
    from tokensmith import peak_rss_bytes

    with tempfile.TemporaryDirectory() as out:
        losses = _train(side, steps, out)
    return {"side": side, "losses": losses, "peak_rss_bytes": peak_rss_bytes()}


def _spawn(side: str, steps: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", side, str(steps)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {side} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _threads() -> int:
    return int(os.environ.get("BENCH_THREADS", "1"))


def _peak_tensor_bytes(side: str, steps: int) -> int:
    """The peak of live tensor bytes while ``side`` trains ``steps`` steps (profiler events)."""
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as out:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            _train(side, steps, out)
        trace = Path(out) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text())["traceEvents"]
    deltas = sorted((e["args"]["Ev Idx"], e["args"]["Bytes"]) for e in events if e.get("name") == "[memory]")
    live = peak = 0
    for _, nbytes in deltas:
        live += nbytes
        peak = max(peak, live)
    return peak


def measure(quick: bool) -> dict:
    """Step times in this process, the sides alternating run by run; peak RSS in a fresh
    process per side; peak tensor bytes under the profiler; every run's losses compared."""
    import torch

    torch.set_num_threads(_threads())
    steps, rounds = (10, 3) if quick else (30, 8)
    times: dict[str, list[list[float]]] = {"trainer": [], "runner": []}
    losses: dict[str, list[list[float]]] = {"trainer": [], "runner": []}
    for i in range(rounds):
        for side in (("trainer", "runner") if i % 2 == 0 else ("runner", "trainer")):
            per_step: list[float] = []
            with tempfile.TemporaryDirectory() as out:
                losses[side].append(_train(side, steps, out, callbacks=[_StepTimes.make(per_step)]))
            times[side].append(per_step[1:])  # the first step warms up
    fresh = {side: _spawn(side, steps) for side in ("trainer", "runner")}
    every = [run for side in losses for run in losses[side]] + [fresh[s]["losses"] for s in fresh]
    if any(run != every[0] for run in every):
        raise AssertionError(f"the losses differ: runner {losses['runner'][0][:4]}..., "
                             f"Trainer {losses['trainer'][0][:4]}...")
    step = {side: statistics.median(t for run in times[side] for t in run) for side in times}
    paired = statistics.median(statistics.median(r) / statistics.median(t)
                               for r, t in zip(times["runner"], times["trainer"], strict=True))
    tensors = {side: _peak_tensor_bytes(side, 3) for side in times}
    return {"steps": steps, "rounds": rounds, "losses": every[0], "step_seconds": step,
            "paired_step_ratio": paired, "round_medians": {s: [statistics.median(r) for r in times[s]]
                                                           for s in times},
            "peak_rss_bytes": {s: fresh[s]["peak_rss_bytes"] for s in fresh}, "peak_tensor_bytes": tensors,
            "threads": _threads()}


def to_report(result: dict):
    from tokensmith import Provenance, Report, Series, Table, ratio

    sides = ("trainer", "runner")
    step, rss, tensors = result["step_seconds"], result["peak_rss_bytes"], result["peak_tensor_bytes"]
    rounds = result["round_medians"]
    mib = 2 ** 20
    return Report(
        name="runner",
        metrics={"step_time_ratio": ratio(step["runner"], step["trainer"]),
                 "paired_step_time_ratio": result["paired_step_ratio"],
                 "peak_rss_ratio": ratio(rss["runner"], rss["trainer"]),
                 "peak_tensor_bytes_ratio": ratio(tensors["runner"], tensors["trainer"]),
                 "identical_losses": 1, "steps": result["steps"], "rounds": result["rounds"],
                 "runner_ms_per_step": step["runner"] * 1e3, "trainer_ms_per_step": step["trainer"] * 1e3},
        tables=(Table("per side", ("side", "ms/step (median)", "peak RSS (MiB)", "peak tensors (MiB)"),
                      tuple((s, step[s] * 1e3, rss[s] / mib, tensors[s] / mib) for s in sides)),
                Table("every round", ("round", "Trainer ms/step", "runner ms/step"),
                      tuple((i, t * 1e3, r * 1e3) for i, (t, r) in enumerate(zip(rounds["trainer"],
                                                                                  rounds["runner"],
                                                                                  strict=True))))),
        series=(Series("loss (both sides, identical)", list(range(1, len(result["losses"]) + 1)),
                       result["losses"], "step", "loss"),
                Series("Trainer ms/step", list(range(len(rounds["trainer"]))),
                       [t * 1e3 for t in rounds["trainer"]], "round", "ms/step (median)", group="time"),
                Series("runner ms/step", list(range(len(rounds["runner"]))),
                       [t * 1e3 for t in rounds["runner"]], "round", "ms/step (median)", group="time"),
                Series("peak tensors MiB", sides, tuple(tensors[s] / mib for s in sides), plot="bar",
                       y_label="MiB")),
        notes=(f"tiny Llama (hidden {SETTINGS['hidden_size']}, {SETTINGS['layers']} layers), blocks of "
               f"{SETTINGS['block']} tokens, batch {SETTINGS['batch_size']}, lr {SETTINGS['lr']}, seed 0, "
               f"{result['threads']} thread(s); {result['rounds']} runs of {result['steps']} steps per side, "
               "alternating, in one process (the first step of each run is not timed); peak RSS in a "
               "fresh process per side; peak tensors from profiler memory events over 3 steps",
               "the losses of every run of both sides are identical (the benchmark fails otherwise)",
               "targets: step_time_ratio <= 1.05, peak_rss_ratio <= 1.05, peak_tensor_bytes_ratio <= 1.05"),
        provenance=Provenance.collect(model="tiny-llama", runtime={"device": "cpu", "dtype": "float32",
                                                                   "threads": result["threads"]}, seed=0))


def main(out_dir: Path, quick: bool):
    return to_report(measure(quick))


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--worker":
    print(json.dumps(_worker(sys.argv[2], int(sys.argv[3]))))
