"""tokensmith-baselines' ``tokenizer-metrics`` against the peers users would pick instead, on
SmolLM2's tokenizer, same inputs on both sides:

* tokenkit 0.1.3: fertility (``len(tokenize(text)) / len(text.split())``, per line here) and parity
  (``len(tokenize(A)) / len(tokenize(B))`` per translation pair), through its ``TokenMetrics``
  (one ``AutoTokenizer`` load for the whole corpus, its cheapest use);
* tokenization-scorer 1.1.8: Rényi efficiency and entropy, Shannon efficiency and entropy, sequence
  length, percentile frequency and bits, on the corpus pre-tokenized by SmolLM2 (each id written as
  one whitespace-free unit ``t<id>``, so its whitespace split gives exactly our tokens).

For each metric both compute: the values and their |difference| (0 or float noise), and lines per
second of tokensmith's one pass (reading the corpus, encoding, every metric) against tokenkit's
fertility plus tokenization-scorer's seven metrics (their inputs already in memory; the
pre-tokenization is not timed on their side).

Optional: the peers are no dependency of any plugin; without them ``main`` says so, returns
``None`` and leaves an earlier ``tokenizer-peers.json`` as it is (README.md: their own venv).
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

PEERS = {"tokenkit": "tokenkit", "tokenization-scorer": "tokenization_scorer"}
#: tokenization-scorer's metric name -> ours, and the sign it reports ("higher is better")
SCORER = {"renyi": ("renyi_efficiency", 1), "renyi_entropy": ("renyi_entropy", 1),
          "shannon_efficiency": ("shannon_efficiency", 1), "shannon_entropy": ("shannon_entropy", 1),
          "seq_len": ("sequence_length", -1), "percentile_freq": ("percentile_freq", 1), "bits": ("bits", -1)}


def _missing() -> list[str]:
    return [dist for dist, module in PEERS.items() if importlib.util.find_spec(module) is None]


def _hf_dir(tokenizer: Any, where: Path) -> str:
    """A folder ``AutoTokenizer.from_pretrained`` reads (tokenkit takes a path): the same
    tokenizer.json saved by transformers."""
    from transformers import PreTrainedTokenizerFast

    source = where / "tokenizer.json"
    tokenizer.save(source)
    PreTrainedTokenizerFast(tokenizer_file=str(source)).save_pretrained(where / "hf")
    return str(where / "hf")


def main(out_dir: Path, quick: bool = False):
    missing = _missing()
    if missing:
        print(f"tokenizer-peers: peers not importable: {', '.join(missing)} "
              "(see bench/tokenizer-peers/README.md)")
        return None
    import contextlib
    import io

    import pandas as pd
    import tokenization_scorer
    from tokenkit import TokenMetrics

    from tokensmith import Provenance, Registry, Report, Series, Table, best_of
    from tokensmith.adapters.models import source_tokenizer

    lines_n = 300 if quick else 5000
    repeats = 1 if quick else 3
    registry = Registry.from_environment()
    tokenizer = source_tokenizer("smollm2")
    evaluation = registry.build("evaluation", {"type": "tokenizer-metrics", "dataset": "licenses",
                                               "sample": lines_n, "parallel": ["tur", "eng"]})
    lines = list(evaluation.lines(lines_n))
    pairs = evaluation.translation_pairs(None)
    ours = evaluation.run(tokenizer).metrics  # reads the pairs once; the timed runs reuse them

    ids = [e.ids for e in tokenizer.encode_batch(lines)]
    pretokenized = [" ".join(f"t{i}" for i in seq) for seq in ids]
    with tempfile.TemporaryDirectory() as tmp:
        path = _hf_dir(tokenizer, Path(tmp))

        def tokenkit_fertility():
            frame = pd.DataFrame({"language": [str(i) for i in range(len(lines))], "text": lines,
                                  "translation": [""] * len(lines)})
            return TokenMetrics(frame, tokenizer=path).fertilize("text", "language")

        def scorer_metrics():
            out = {}
            with contextlib.redirect_stderr(io.StringIO()):  # it prints its defaults and a tqdm bar
                for name, (mine, sign) in SCORER.items():
                    extra = {"power": evaluation.alpha} if name.startswith("renyi") else {}
                    if name == "percentile_freq":
                        extra = {"perc_start": evaluation.percentile_start,
                                 "perc_end": evaluation.percentile_end}
                    out[mine] = sign * float(tokenization_scorer.score(pretokenized, metric=name, **extra))
            return out

        scored = tokenkit_fertility()
        pair_frame = pd.DataFrame({"language": ["x"] * len(pairs), "text": [a for _, a, _ in pairs],
                                   "translation": [b for _, _, b in pairs]})
        their_parity = TokenMetrics(pair_frame, tokenizer=path).paritize("text", "translation")["parity"]
        words = [len(line.split()) for line in lines]
        fertility = sum(f * w for f, w in zip(scored["fertility"], words, strict=True)) / sum(words)
        theirs = {"fertility": fertility,
                  "parity": float(their_parity.mean()), **scorer_metrics()}
        per_line = max(abs(f - len(seq) / w)
                       for f, seq, w in zip(scored["fertility"], ids, words, strict=True))

        def run_ours():
            with contextlib.redirect_stderr(io.StringIO()):
                evaluation.run(tokenizer)

        mine = best_of(run_ours, repeats=repeats, warmup=0)
        kit = best_of(tokenkit_fertility, repeats=repeats, warmup=0)
        scorer = best_of(scorer_metrics, repeats=repeats, warmup=0)
    rows, metrics = [], {"lines": len(lines), "parity_pairs": len(pairs)}
    for name, value in theirs.items():
        diff = abs(ours[name] - value)
        peer = "tokenkit" if name in ("fertility", "parity") else "tokenization-scorer"
        rows.append((name, peer, ours[name], value, diff))
        metrics[f"max_abs_diff.{name}"] = diff
    metrics["max_abs_diff.fertility_per_line"] = per_line
    theirs_s = kit.best + scorer.best
    metrics.update(ours_s=mine.best, tokenkit_s=kit.best, scorer_s=scorer.best,
                   ours_lines_per_s=len(lines) / mine.best, theirs_lines_per_s=len(lines) / theirs_s,
                   speed_ratio=theirs_s / mine.best)
    notes = (f"SmolLM2's tokenizer; {len(lines)} non-blank lines of the licenses corpus; parity on "
             f"{len(pairs)} UDHR articles, Turkish / English; best of "
             f"{repeats}. Ours: one tokenizer-metrics pass (corpus read, encode, every metric, parity "
             "included); theirs: tokenkit's TokenMetrics fertility (tokenizer load + tokenize) plus "
             "tokenization-scorer's seven metrics on text already pre-tokenized in memory.",
             "speed_ratio = (tokenkit + tokenization-scorer seconds) / tokensmith seconds, same run.")
    return Report(
        name="tokenizer-peers", metrics=metrics,
        tables=(Table("agreement", ("metric", "peer", "tokensmith", "peer value", "|difference|"),
                      tuple(rows)),),
        series=(Series("lines per second", ("tokensmith (all metrics)", "tokenkit (fertility)",
                                            "tokenization-scorer (7 metrics)"),
                       (len(lines) / mine.best, len(lines) / kit.best, len(lines) / scorer.best),
                       plot="bar", y_label="lines/s"),),
        notes=notes, provenance=Provenance.collect(registry=registry, model="smollm2"))


if __name__ == "__main__":
    import sys

    from tokensmith import to_terminal, write_all

    here = Path(__file__).resolve().parent
    report = main(here.parent / "results", "--quick" in sys.argv)
    if report is not None:
        write_all(report, here.parent / "results")
        to_terminal(report)
