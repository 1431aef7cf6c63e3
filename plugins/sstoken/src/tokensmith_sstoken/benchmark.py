"""The ``sstoken`` benchmark (``tokensmith bench sstoken``): ssToken (Qin et al., ICLR 2026, arXiv
2510.18250) against full-token SFT and a random ρ-selection, after the same training budget.

One model (SmolLM2-135M-Instruct by default) is fine-tuned from the same weights once per arm,
through the core recipe runner, on the same instruction examples in the same order (the
``natural-instructions`` dataset of tokensmith-datasets: BIG-bench's crowdsourcing subtasks,
prompt = the subtask's one-line ``Prompt:`` and the input, response = the output):

- ``full``: every response token (plain SFT);
- ``random``: a random ⌈ρR⌉ of each sample's R response tokens (``sstoken-random``);
- ``sstoken``: the top ⌈ρR⌉ by γ·minmax(REL) + (1 − γ)·attention (eq. 3-5 of the paper);
- ``rel-only`` (γ = 1) and ``attention-only`` (γ = 0): the paper's two ablations;
- ``sstoken-ema``: ssToken with the EMA history instead of the frozen base (not in the default set).

Measured on held-out examples of the same subtasks (the dataset's eval split): the mean
response-token loss, the response-token accuracy (teacher-forced argmax) and the share of
examples whose whole response is the argmax (teacher-forced exact match); the base model
before any training is measured the same way.
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from tokensmith import (
    IGNORE_INDEX,
    Benchmark,
    BuildContext,
    ConfigError,
    DataUnavailableError,
    Provenance,
    Report,
    Runtime,
    Series,
    Table,
    TokenMask,
    non_negative_int,
    positive,
    positive_int,
    probability,
    progress,
    response_tokens,
    unit_interval,
)

from .select import keep_top

COMPONENT = "sstoken benchmark"
ARMS = ("full", "random", "sstoken", "rel-only", "attention-only", "sstoken-ema")
DEFAULT_ARMS = ("full", "random", "sstoken")
#: subtasks with a short input and a free-text output (a fact, a question, an answer, a list of words)
TASKS = ("subtask016_mctaco_answer_generation_frequency", "subtask033_winogrande_answer_generation",
         "subtask037_qasc_generate_related_fact", "subtask040_qasc_question_generation",
         "subtask041_qasc_answer_generation", "subtask044_essential_terms_identifying_essential_words")
FULL = {"steps": 6, "eval_examples": 24}
QUICK = {"steps": 3, "eval_examples": 6}
_OPTIONAL_POSITIVE = attrs.validators.optional(positive_int)


@attrs.define
class RandomRatio(TokenMask):
    """ssToken's control: a uniformly random ``ceil(ratio·R)`` of each sample's R response tokens
    (the same count per sample as ``sstoken`` keeps), seeded by ``seed`` and the batch's labels."""

    name = "sstoken-random"
    ratio: float = attrs.field(default=0.6, validator=probability,
                               metadata={"doc": "ρ, the share of each sample's response tokens kept, "
                                         "in (0, 1]"})
    seed: int = attrs.field(default=0, validator=non_negative_int,
                            metadata={"doc": "seed of the draw (with the batch's labels)"})

    def __call__(self, batch: Mapping[str, Any], outputs: Any) -> Any:
        import hashlib

        import torch

        eligible = response_tokens(batch)
        labels = batch["labels"]
        digest = hashlib.blake2b(str(self.seed).encode(), digest_size=8)
        digest.update(labels.detach().cpu().contiguous().numpy().tobytes())
        generator = torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)
        scores = torch.rand(eligible.shape, generator=generator).to(eligible.device)
        return keep_top(scores, eligible, self.ratio)


def short_prompt(instruction: str) -> str:
    """The one-line task statement of a natural-instructions definition (after its last
    ``Prompt:``); the whole definition when it has none."""
    head, sep, tail = instruction.rpartition("Prompt:")
    return tail.strip() if sep and tail.strip() else instruction.strip()


def as_sft(example: Mapping[str, Any]) -> dict[str, str]:
    """A natural-instructions example as a prompt/response pair."""
    return {"prompt": f"{short_prompt(example['instruction'])}\n{example['input'].strip()}\nAnswer:",
            "response": " " + example["output"].strip()}


def select_examples(records: Iterable[tuple[str, Mapping[str, Any]]], *, tasks: tuple[str, ...], n_train: int,
                    n_eval: int, fits: Any, eval_fraction: float, seed: int) -> dict[str, Any]:
    """Round-robin quotas per subtask from a keyed stream of examples: ``ceil(n/len(tasks))``
    of each subtask's train and eval examples (by the dataset's seeded split of the key), only
    those with ``fits(pair)`` (the whole sequence within max_length). Stops reading once every
    quota is full. Returns the train and eval pairs (in subtask order, interleaved) and counts."""
    from tokensmith import split_of

    quota = {"train": math.ceil(n_train / len(tasks)), "eval": math.ceil(n_eval / len(tasks))}
    chosen: dict[str, dict[str, list]] = {s: {t: [] for t in tasks} for s in quota}
    read = too_long = 0
    for key, example in records:
        task = example.get("task")
        if task not in chosen["train"]:
            continue
        split = split_of(key, eval_fraction=eval_fraction, seed=seed)
        if len(chosen[split][task]) >= quota[split]:
            if all(len(v) >= quota[s] for s in quota for v in chosen[s].values()):
                break
            continue
        read += 1
        pair = as_sft(example)
        if not fits(pair):
            too_long += 1
            continue
        chosen[split][task].append(pair)

    def interleave(split: str, n: int) -> list[dict[str, str]]:
        lists = [chosen[split][t] for t in tasks]
        out = [lst[i] for i in range(max(map(len, lists), default=0)) for lst in lists if i < len(lst)]
        return out[:n]

    train, held_out = interleave("train", n_train), interleave("eval", n_eval)
    if len(train) < n_train or len(held_out) < n_eval:
        raise DataUnavailableError(
            f"the subtasks {list(tasks)} gave {len(train)} train and {len(held_out)} "
            f"held-out examples that fit, {n_train} and {n_eval} needed", component=COMPONENT,
            hint="ask fewer steps/eval_examples, raise max_length, or name more tasks")
    return {"train": train, "eval": held_out, "read": read, "too_long": too_long}


def _say(message: str) -> None:
    """A timestamped line on stderr (the progress bar is silent in a pipe; a run of many minutes
    should still say where it is)."""
    import sys
    import time

    print(f"[sstoken benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sft_row(pair: Mapping[str, str], tokenizer: Any) -> dict[str, list[int]]:
    """A prompt/response pair as the runner's SFT data settings make it (docs/training.md, ``[data]``
    with ``prompt``/``response``, ``bos``/``eos`` true): ``<bos> prompt response <eos>``, the
    prompt's labels IGNORE_INDEX."""
    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    eos = [tokenizer.eos_id] if tokenizer.eos_id is not None else []
    prompt = bos + list(tokenizer.encode(pair["prompt"]).ids)
    response = list(tokenizer.encode(pair["response"]).ids) + eos
    return {"input_ids": prompt + response, "labels": [IGNORE_INDEX] * len(prompt) + response,
            "response_mask": [0] * len(prompt) + [1] * len(response)}


def pad_batch(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors of ``rows``: ``input_ids`` (``pad_id``), ``labels`` (IGNORE_INDEX),
    ``attention_mask``."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    batch = {"input_ids": torch.full((len(rows), width), pad_id), "labels": torch.full((len(rows), width),
             IGNORE_INDEX), "attention_mask": torch.zeros(len(rows), width, dtype=torch.long)}
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        batch["input_ids"][i, :n] = torch.tensor(r["input_ids"])
        batch["labels"][i, :n] = torch.tensor(r["labels"])
        batch["attention_mask"][i, :n] = 1
    return batch


def response_metrics(
model: Any, rows: list[dict[str, list[int]]], pad_id: int, batch_size: int = 8,
                     ) -> dict[str, float]:
    """Teacher-forced response metrics over ``rows`` (the runner's SFT sequences): the mean loss
    per response token (nats), the token accuracy (argmax = target) and the exact-match share
    (every response token of an example right)."""
    import torch

    model.eval()
    nll = tokens = correct = exact = 0.0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = pad_batch(rows[start:start + batch_size], pad_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           use_cache=False).logits.float()
            target = batch["labels"][:, 1:]
            pred = logits[:, :-1]
            mask = target != IGNORE_INDEX
            losses = torch.nn.functional.cross_entropy(pred.transpose(1, 2), target.clamp(min=0),
                                                       reduction="none")
            right = (pred.argmax(-1) == target) & mask
            nll += float(losses[mask].sum())
            tokens += int(mask.sum())
            correct += int(right.sum())
            exact += int(((right | ~mask).all(dim=1)).sum())
    return {"loss": nll / tokens, "accuracy": correct / tokens, "exact": exact / len(rows)}


def _objectives(arm: str, ratio: float, gamma: float, ema_decay: float, seed: int) -> tuple[list[Any], Any]:
    from .objectives import SSToken, SSTokenRecipe

    if arm == "full":
        return [], None
    if arm == "random":
        return [RandomRatio(ratio=ratio, seed=seed)], None
    g = {"sstoken": gamma, "rel-only": 1.0, "attention-only": 0.0, "sstoken-ema": gamma}[arm]
    mode = "ema" if arm == "sstoken-ema" else "base"
    return [SSToken(ratio=ratio, gamma=g, history_mode=mode, ema_decay=ema_decay)], SSTokenRecipe()


def measure(*, model_source: Any, arms: tuple[str, ...], steps: int, eval_examples: int, batch_size: int,
            max_length: int, lr: float, ratio: float, gamma: float, ema_decay: float, seed: int,
            tasks: tuple[str, ...], registry: Any, runtime: Runtime, examples: Any = None) -> dict[str, Any]:
    """Every arm's run and held-out metrics, as one mapping (see :func:`to_report`). ``examples``:
    a keyed stream of natural-instructions records (default: the registered dataset's)."""
    import torch

    from tokensmith import DataSettings, ModelSource, run_recipe

    torch.set_num_threads(runtime.threads or 1)
    base, tokenizer = registry.load_model(ModelSource.from_config(model_source), runtime)
    base.eval()
    data = DataSettings(prompt="prompt", response="response", max_length=max_length)

    def fits(pair: dict[str, str]) -> bool:
        return len(sft_row(pair, tokenizer)["input_ids"]) <= max_length

    eval_fraction = 0.1
    if examples is None:
        dataset = registry.build("dataset", {"type": "natural-instructions", "eval_fraction": eval_fraction,
                                             "seed": 0})
        examples = dataset.keyed("all")
    chosen = select_examples(examples, tasks=tasks, n_train=steps * batch_size, n_eval=eval_examples,
                             fits=fits, eval_fraction=eval_fraction, seed=0)
    eval_rows = [sft_row(pair, tokenizer) for pair in chosen["eval"]]
    pad = next((int(v) for v in (getattr(tokenizer, "pad_id", None), getattr(tokenizer, "eos_id", None))
                if v is not None), 0)
    _say(f"model loaded, {len(chosen['train'])} train / {len(chosen['eval'])} held-out examples selected")
    results: dict[str, Any] = {"base": response_metrics(base, eval_rows, pad), "runs": []}
    _say(f"base model measured: loss {results['base']['loss']:.4f}")
    pristine = copy.deepcopy(base.state_dict())
    attention = getattr(base.config, "_attn_implementation", None)
    train_rows = [sft_row(pair, tokenizer) for pair in chosen["train"]]
    lengths = [sum(r["response_mask"]) for r in train_rows]
    # ⌈ρR⌉ of R: short responses keep more than ρ (a 2-token answer keeps both at ρ = 0.6)
    kept_share = sum(math.ceil(ratio * n - 1e-9) for n in lengths) / sum(lengths)
    with tempfile.TemporaryDirectory(prefix="tokensmith-bench-sstoken-") as out:
        for arm in progress(arms, total=len(arms), desc="sstoken arms", unit="arm"):
            base.load_state_dict(pristine)
            model = base
            objectives, recipe = _objectives(arm, ratio, gamma, ema_decay, seed)
            for objective in objectives:
                if hasattr(objective, "with_history"):
                    objective.with_history(model)  # θ_his: a frozen copy of these same starting weights
            arguments = {"steps": steps, "batch_size": batch_size, "lr": lr, "schedule": "constant",
                         "seed": seed, "progress": "off", "save_final": False}
            result = run_recipe(model=model, tokenizer=tokenizer, train_data=chosen["train"], data=data,
                                objectives=objectives, recipe=recipe, arguments=arguments, runtime=runtime,
                                output_dir=Path(out) / arm, registry=registry)
            results["runs"].append({"arm": arm, "losses": result.losses, "seconds": result.seconds,
                                    "kept_share": 1.0 if arm == "full" else kept_share,
                                    **response_metrics(result.model, eval_rows, pad)})
            _say(f"arm {arm}: trained in {result.seconds:.0f} s, held-out loss "
                 f"{results['runs'][-1]['loss']:.4f}")
            # the sstoken recipe switched the model to eager attention with attention maps: undo it
            if attention is not None and hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(attention)
            model.config.output_attentions = False
            del objectives
    results.update(train_examples=len(chosen["train"]), eval_examples=len(chosen["eval"]),
                   kept_share=kept_share, read=chosen["read"], too_long=chosen["too_long"],
                   setup={"steps": steps, "batch_size": batch_size, "max_length": max_length, "lr": lr,
                          "ratio": ratio, "gamma": gamma, "ema_decay": ema_decay, "seed": seed,
                          "tasks": list(tasks), "arms": list(arms)})
    return results



def to_report(results: dict[str, Any], provenance: Provenance | None = None) -> Report:
    """Held-out response loss/accuracy by arm, the change against full-token SFT, the curves."""
    setup = results["setup"]
    runs = {r["arm"]: r for r in results["runs"]}
    base = results["base"]
    metrics: dict[str, float] = {"steps": setup["steps"], "train_examples": results["train_examples"],
                                 "eval_examples": results["eval_examples"],
                                 "base_loss": base["loss"], "base_accuracy": base["accuracy"]}
    rows = [("base (no training)", None, base["loss"], base["accuracy"], base["exact"], None, None)]
    full = runs.get("full")
    for arm, r in runs.items():
        metrics[f"loss[{arm}]"] = r["loss"]
        metrics[f"accuracy[{arm}]"] = r["accuracy"]
        metrics[f"exact[{arm}]"] = r["exact"]
        gain = None
        if full is not None and arm != "full":
            gain = r["accuracy"] - full["accuracy"]
            metrics[f"accuracy_minus_full[{arm}]"] = gain
            metrics[f"loss_minus_full[{arm}]"] = r["loss"] - full["loss"]
        rows.append((arm, r["kept_share"], r["loss"], r["accuracy"], r["exact"], gain, r["seconds"]))
    table = Table("held-out response tokens after the same budget (teacher-forced)",
                  ("arm", "kept share", "loss (nats/token)", "token accuracy", "exact match",
                   "accuracy - full", "train seconds"), tuple(rows))
    series = [Series("token accuracy", tuple(runs), tuple(runs[a]["accuracy"] for a in runs), "arm",
                     "held-out response token accuracy", plot="bar", group="held-out token accuracy"),
              Series("loss", tuple(runs), tuple(runs[a]["loss"] for a in runs), "arm",
                     "held-out response loss (nats/token)", plot="bar", group="held-out loss")]
    for arm, r in runs.items():
        if r["losses"]:
            series.append(Series(f"train: {arm}", tuple(s for s, _ in r["losses"]),
                                 tuple(v for _, v in r["losses"]), "step", "training loss (kept tokens)",
                                 group="training loss"))
    subtasks = ", ".join(t.split("_", 1)[1] for t in setup["tasks"])
    notes = (f"each arm fine-tunes the same starting weights through the core recipe runner: "
             f"{setup['steps']} steps of {setup['batch_size']} examples (the same examples in the same "
             f"order), AdamW lr {setup['lr']:g} constant, full fine-tuning (the paper trains LoRA), seed "
             f"{setup['seed']}",
             f"data: natural-instructions (BIG-bench), subtasks {subtasks}; {results['train_examples']} "
             f"train and {results['eval_examples']} held-out examples (the dataset's seeded eval split), "
             f"quotas per subtask, examples longer than {setup['max_length']} tokens left out "
             f"({results['too_long']} of {results['read']} read)",
             f"rho = {setup['ratio']:g}, gamma = {setup['gamma']:g} (the paper's defaults): ceil(rho*R) of R "
             f"response tokens keeps {results['kept_share']:.2f} of them here (short answers); the history "
             f"model is the frozen starting model (the released code), EMA alpha {setup['ema_decay']:g} for "
             "sstoken-ema; no attention-only warm-up (the code's 10,000 samples exceed this budget)",
             "the training loss of a selecting arm is over its kept tokens only, so the curves do not "
             "compare across arms; the held-out metrics are over every response token",
             "paper (arXiv 2510.18250): up to +4.3% over full-token SFT and +2.8% over RHO-1/TokenCleaning "
             "on downstream benchmarks (Llama-3.x 3B/8B, Qwen-2.5 7B/14B, LoRA, 50k DS2 samples)")
    provenance = provenance or Provenance()
    return Report(name="sstoken", metrics=metrics, tables=(table,), series=tuple(series), notes=notes,
                  provenance=attrs.evolve(provenance, extra={**provenance.extra, "setup": setup}))


@attrs.define
class SSTokenBenchmark(Benchmark):
    """Full-token SFT vs random-ρ vs ssToken (and its REL-only / attention-only ablations) after the
    same budget, held-out response loss and accuracy."""

    name = "sstoken"

    model: Any = attrs.field(default="smollm2", metadata={
        "doc": "the model source fine-tuned by every arm (a name, a directory or a table)"})
    arms: tuple[str, ...] = attrs.field(default=DEFAULT_ARMS, converter=tuple, metadata={
        "doc": f"the arms, from {', '.join(ARMS)}"})
    steps: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": f"optimizer steps per arm (default {FULL['steps']}; quick {QUICK['steps']})"})
    sample: int | None = attrs.field(default=None, validator=_OPTIONAL_POSITIVE, metadata={
        "doc": f"held-out examples measured (default {FULL['eval_examples']}; quick "
               f"{QUICK['eval_examples']})"})

    batch_size: int = attrs.field(default=4, validator=positive_int, metadata={"doc": "examples per step"})
    max_length: int = attrs.field(default=80, validator=positive_int,
                                  metadata={"doc": "tokens per example at most (longer ones are not used)"})
    lr: float = attrs.field(default=5e-5, validator=positive, metadata={"doc": "AdamW learning rate"})
    ratio: float = attrs.field(default=0.6, validator=probability, metadata={"doc": "ρ (paper: 0.6)"})
    gamma: float = attrs.field(default=0.5, validator=unit_interval, metadata={"doc": "γ (paper: 0.5)"})
    ema_decay: float = attrs.field(default=0.99, validator=unit_interval,
                                   metadata={"doc": "α of the sstoken-ema arm's history"})
    tasks: tuple[str, ...] = attrs.field(default=TASKS, converter=tuple, metadata={
        "doc": "natural-instructions subtasks the examples come from"})
    seed: int = attrs.field(default=0, validator=non_negative_int, metadata={"doc": "seed of every run"})
    threads: int = attrs.field(default=1, validator=positive_int, metadata={"doc": "CPU threads"})
    ctx: BuildContext | None = attrs.field(default=None, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ConfigError(f"arms {unknown or '[]'} are not among {list(ARMS)}", component=COMPONENT,
                              hint=f"e.g. arms = {list(DEFAULT_ARMS)}")
        if not self.tasks:
            raise ConfigError("tasks is empty", component=COMPONENT, hint=f"e.g. tasks = {list(TASKS[:2])}")

    def run(self, *, quick: bool = False) -> Report:
        setup = QUICK if quick else FULL
        registry = self.registry()
        runtime = Runtime(device="cpu", dtype="float32", seed=self.seed, threads=self.threads)
        results = measure(model_source=self.model, arms=self.arms, steps=self.steps or setup["steps"],
                          eval_examples=self.sample or setup["eval_examples"], batch_size=self.batch_size,
                          max_length=self.max_length, lr=self.lr, ratio=self.ratio, gamma=self.gamma,
                          ema_decay=self.ema_decay, seed=self.seed, tasks=self.tasks, registry=registry,
                          runtime=runtime)
        model = self.model if isinstance(self.model, str) else str(dict(self.model))
        return to_report(results, Provenance.collect(registry, runtime, model, self.seed))
