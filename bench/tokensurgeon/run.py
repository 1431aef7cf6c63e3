"""mergekit's ``mergekit-tokensurgeon`` (mergekit 0.1.5) as the peer of the ``transplant``
benchmark (tokensmith-tokenadapt): SmolLM2 moved onto the same 8k byte-level BPE of licence
texts, scored on the same held-out licence text with the same scorer (``tokensmith.score_texts``,
bits per byte), against the original SmolLM2 on its own tokenizer in the same run.

Methods: ``subword`` (a new token is the mean of its pieces under the old tokenizer),
``mean`` and ``john_hewitt`` (the mean of the old table; plus noise), which need no donor model
trained on the new tokenizer. tokensurgeon's default ``omp`` and its other geometry-based
methods read the *donor's* embeddings: a donor already trained on the new tokenizer, which a
user transplanting onto a fresh tokenizer does not have; the donor here is a one-layer model
with random weights that only carries the new tokenizer, so those methods are not run.
No fine-tuning on this side (tokensurgeon has none).

Optional: mergekit lives in its own venv (README.md). Without ``mergekit-tokensurgeon``
(``$MERGEKIT_TOKENSURGEON``, else ``/work/mergekit-venv/bin``, else ``$PATH``), or without
tokensmith-tokenadapt (the held-out text and the licence BPE come from it), ``main`` says why,
returns ``None`` and leaves earlier results as they are.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

METHODS = ("subword", "mean", "john_hewitt")
#: the held-out licence bytes scored: the same as the committed transplant run (its README)
HELD_OUT_BYTES = 12_000
QUICK_HELD_OUT_BYTES = 4_000
REPO = Path(__file__).resolve().parents[2]
#: the licence BPE the transplant benchmark ran on (tokensmith-tokenadapt's results)
LICENCE_BPE = REPO / "plugins" / "tokenadapt" / "results" / "licence-bpe-8k"
DEFAULT_EXE = "/work/mergekit-venv/bin/mergekit-tokensurgeon"
#: a tokensurgeon call on SmolLM2 takes a few minutes on a loaded 2-core machine
CALL_TIMEOUT_S = 900


def tokensurgeon() -> str | None:
    """The ``mergekit-tokensurgeon`` executable, or ``None``."""
    found = shutil.which("mergekit-tokensurgeon")
    for candidate in (os.environ.get("MERGEKIT_TOKENSURGEON"), DEFAULT_EXE, found):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _hf_tokenizer_dir(tokenizer: Any, where: Path, *, eos: str | None) -> None:
    """``tokenizer`` saved as transformers saves a fast tokenizer (``AutoTokenizer`` reads it)."""
    from transformers import PreTrainedTokenizerFast

    where.mkdir(parents=True, exist_ok=True)
    source = where / "tokenizer.json"
    tokenizer.save(source)
    PreTrainedTokenizerFast(tokenizer_file=str(source), eos_token=eos).save_pretrained(where)


def _model_dir(smollm2_dir: Path, old: Any, where: Path) -> Path:
    """SmolLM2's converted cache folder as tokensurgeon reads a model: its weights and config
    linked (not copied), its tokenizer saved by transformers beside them."""
    where.mkdir(parents=True)
    for item in smollm2_dir.iterdir():
        if item.suffix in (".safetensors", ".json") and not item.name.startswith("tokenizer") \
                and item.name != "manifest.json":
            (where / item.name).symlink_to(item)
    _hf_tokenizer_dir(old, where, eos="<|im_end|>" if old.token_to_id("<|im_end|>") is not None else None)
    return where


def _donor_dir(new: Any, hidden: int, where: Path, seed: int) -> Path:
    """A donor that only carries the new tokenizer: a one-layer Llama with random weights of
    SmolLM2's width and the new vocabulary (the methods run here never read its rows)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=new.vocab_size, hidden_size=hidden, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(where)
    eos = "<|endoftext|>" if new.token_to_id("<|endoftext|>") is not None else None
    _hf_tokenizer_dir(new, where, eos=eos)
    return where


def main(out_dir: Path, quick: bool = False):
    exe = tokensurgeon()
    if exe is None:
        print("tokensurgeon: mergekit-tokensurgeon not found (see bench/tokensurgeon/README.md: "
              "mergekit 0.1.5 in its own venv); skipped")
        return None
    if importlib.util.find_spec("tokensmith_tokenadapt") is None:
        print("tokensurgeon: tokensmith-tokenadapt is not installed (the held-out text and the licence "
              "BPE are the transplant benchmark's); skipped")
        return None
    from tokensmith_tokenadapt.benchmark import held_out_texts

    from tokensmith import (
        HFCausalLM,
        HFTokenizer,
        Provenance,
        Registry,
        Report,
        Series,
        Table,
        progress,
        score_texts,
    )
    from tokensmith.adapters.models import load_transformers_dir, smollm2_cache_dir

    seed = 0
    held_out = QUICK_HELD_OUT_BYTES if quick else HELD_OUT_BYTES
    methods = ("subword",) if quick else METHODS
    registry = Registry.from_environment()
    licenses = registry.build("dataset", {"type": "licenses"})
    if (LICENCE_BPE / "tokenizer.json").is_file():
        new, trained_here = HFTokenizer.from_file(LICENCE_BPE), False
    else:  # the same trainer and data as the transplant benchmark's default
        trainer = registry.build("tokenizer_trainer", {"type": "byte-level-bpe", "vocab_size": 8000})
        new = trainer.train(e["text"] for e in licenses.examples("train") if e["text"].strip())
        trained_here = True
    from tokensmith import PipelineSpec

    pipeline = registry.build_pipeline(PipelineSpec(
        model={"source": "smollm2", "progress": False},
        runtime={"device": "cpu", "dtype": "fp32", "threads": int(os.environ.get("OMP_NUM_THREADS", "2")),
                 "seed": seed}))
    old, runtime = pipeline.tokenizer, pipeline.runtime
    texts, left_out = held_out_texts(licenses, old, held_out)
    original = score_texts(pipeline.lm, progress(texts, total=len(texts), desc="original", unit="text"))
    hidden = pipeline.model.config.hidden_size
    del pipeline
    rows, metrics = [], {"original_bits_per_byte": original.bits_per_byte, "held_out_bytes": original.bytes,
                         "original_tokens": original.tokens, "new_vocab_size": new.vocab_size}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = _model_dir(smollm2_cache_dir(), old, tmp / "smollm2")
        donor_dir = _donor_dir(new, hidden, tmp / "donor", seed)
        failed: list[str] = []
        for method in methods:
            out = tmp / f"out-{method}"
            start = time.perf_counter()
            done = subprocess.run([exe, str(model_dir), str(donor_dir), str(out), "-a", method,
                                   "--random-seed", str(seed), "--quiet", "-j", "2"],
                                  cwd=tmp, capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
            seconds = time.perf_counter() - start
            if done.returncode != 0:  # reported with its message; the other methods still run
                tail = " ".join((done.stderr or done.stdout).split()[-60:])
                failed.append(f"{method}: mergekit-tokensurgeon exited {done.returncode}: {tail}")
                continue
            # the core's loader: the directory checked first (no custom code, no pickles), every
            # tensor of the config present; scored with `new` itself, the tokenizer it was moved onto
            model, _ = load_transformers_dir(out, runtime, name=f"tokensurgeon-{method}")
            score = score_texts(HFCausalLM(model, new, runtime),
                                progress(texts, total=len(texts), desc=method, unit="text"))
            ratio = score.bits_per_byte / original.bits_per_byte
            rows.append((method, score.bits_per_byte, ratio, score.tokens / original.tokens, seconds))
            metrics.update({f"{method}_bits_per_byte": score.bits_per_byte, f"{method}_ratio": ratio,
                            f"{method}_seconds": seconds})
            del model
            shutil.rmtree(out, ignore_errors=True)
    notes = (
        f"SmolLM2-135M-Instruct moved by mergekit-tokensurgeon 0.1.5 ({exe}) onto the licence byte-level BPE "
        f"({new.vocab_size} ids, fingerprint {new.fingerprint()[:16]}, "
        + ("trained here" if trained_here else f"from {LICENCE_BPE.relative_to(REPO)}") + "); no fine-tuning",
        f"held-out: {original.bytes} bytes of the licences' eval split, the transplant benchmark's selection "
        f"({left_out} licence(s) SmolLM2 cannot encode left out); scored with tokensmith.score_texts",
        "ratio: bits per byte over the original SmolLM2 on its own tokenizer (same run)",
        "omp and the other donor-geometry methods need a donor trained on the new tokenizer; not run",
        "seconds: the tokensurgeon call, load and save included (shared machine)",
        *failed,
    )
    return Report(
        name="tokensurgeon-quick" if quick else "tokensurgeon", metrics=metrics,
        tables=(Table("mergekit-tokensurgeon, SmolLM2 onto the licence BPE",
                      ("method", "bits/byte", "ratio", "tokens", "seconds"), tuple(rows)),),
        series=(Series("bits per byte", [r[0] for r in rows], [r[1] for r in rows], plot="bar",
                       y_label=f"bits/byte (original: {original.bits_per_byte:.3f})"),),
        notes=notes, provenance=Provenance.collect(registry=registry, runtime=runtime, model="smollm2",
                                                   seed=seed))


if __name__ == "__main__":
    import sys

    from tokensmith import to_terminal, write_all

    here = Path(__file__).resolve().parent
    report = main(here.parent / "results", "--quick" in sys.argv)
    if report is not None:
        write_all(report, here.parent / "results")
        to_terminal(report)
